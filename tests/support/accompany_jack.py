"""A held-out chorale soprano played by a JACK client into `improv serve --mode accompany` (a
process, on a private jackd), what improv plays under it received by another client: for the JACK
test and ``benchmarks/bench_accompany.py`` alike."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass

import mido
import numpy as np

from support.serve_process import sent_tally, serve_cmd, served


@dataclass
class Accompanied:
    melody: list[tuple[float, float, int]]  # (on, off, pitch) as sent, perf_counter seconds
    improv: list[tuple[float, float, int]]  # (on, off, pitch) as received
    got: list  # every (time, message) received
    beat_s: float
    first: float  # the first melody note, sent
    exit_code: int
    lines: list[str]
    # improv's own record of the session (serve --record), in seconds on its clock: what it heard
    # (performer) and what it played (improv), (on, off, pitch); {} without ``record``.
    recorded: dict[str, list[tuple[float, float, int]]]

    def grid_errors_ms(self) -> np.ndarray:
        """Each improv onset against the nearest beat of the performer's grid (its first note on a beat)."""
        k = np.array([(on - self.first) / self.beat_s for on, _, _ in self.improv])
        return np.abs(k - np.round(k)) * self.beat_s * 1000


def soprano(beats: float) -> tuple[str, list[tuple[float, float, int]], list[tuple[float, float, int]]]:
    """A held-out chorale's first ``beats``: its soprano and its alto, tenor and bass (in beats)."""
    from improv.evaluation.accompany import chorales

    name, notes, below, _ = chorales(1, skip=3)[0]  # a held-out one: the melody table never saw it
    cut = lambda ns: [(a, min(b, beats), p) for a, b, p in ns if a < beats]  # noqa: E731
    return name, cut(notes), cut(below)


def recorded_seconds(path) -> dict[str, list[tuple[float, float, int]]]:
    """A ``serve --record`` file's tracks by name, each (on, off, pitch) in seconds through the
    file's tempo map (the tempo track merged with each part in turn)."""
    recorded = mido.MidiFile(path)
    parts = {}
    for track in recorded.tracks[1:]:
        alone = mido.MidiFile(type=1, ticks_per_beat=recorded.ticks_per_beat, tracks=[recorded.tracks[0], track])
        t, held, notes = 0.0, {}, []
        for msg in alone:  # merged, msg.time in seconds
            t += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                held[msg.note] = t
            elif msg.type in ("note_on", "note_off") and msg.note in held:
                notes.append((held.pop(msg.note), t, msg.note))
        parts[track.name] = sorted(notes)
    return parts


def accompany_over_jack(jack, checkpoint, beats: float = 12.0, bpm: float = 80.0, record=None, extra: tuple[str, ...] = (), lose_last_off: bool = False, listen_bars: float = 1.0) -> Accompanied:
    """``record``: a path for improv's own record of the session (``Accompanied.recorded``);
    ``extra``: more arguments for `improv serve`; ``lose_last_off``: the melody's last note-off is
    never sent, as when an xrun drops its JACK cycle (``melody`` then lacks that note);
    ``listen_bars``: how long to listen after the last key sent (bars of 4 beats, and a second)."""
    _, notes, _ = soprano(beats)
    beat = 60 / bpm
    more = ("--record", str(record)) if record is not None else ()
    with served(jack, serve_cmd(checkpoint, "--virtual", "--mode", "accompany", "--bpm", str(bpm), *more, *extra)) as s:
        proc, lines, performer, listener = s.proc, s.lines, s.performer, s.listener
        time.sleep(0.5)
        events = sorted([(a * beat, "on", p) for a, _, p in notes] + [(b * beat - 0.03, "off", p) for _, b, p in notes], key=lambda e: (e[0], e[1] == "on"))
        start = time.perf_counter() + 0.2
        sent: dict[int, float] = {}
        melody = []
        for t, kind, p in events:
            while time.perf_counter() < start + t:  # on time to well under a millisecond: the grid is judged against these
                if start + t - time.perf_counter() > 0.003:
                    time.sleep(0.001)
            now = time.perf_counter()
            if lose_last_off and kind == "off" and t == events[-1][0]:
                sent.pop(p, None)
                continue
            performer.send(mido.Message("note_on" if kind == "on" else "note_off", note=p, velocity=80 if kind == "on" else 0))
            if kind == "on":
                sent[p] = now
            elif p in sent:
                melody.append((sent.pop(p), now, p))
        listener.wait(lambda got: False, timeout=listen_bars * 4 * beat + 1.0)  # the bar it keeps time for, and more
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
        listener.wait(lambda got: False, timeout=0.3)
        if code == 0:
            sent_tally(lines)  # its closing line read: ``lines`` complete
        held: dict[int, float] = {}
        improv = []
        for t, m in listener.got:
            if m.type == "note_on" and m.velocity > 0:
                held[m.note] = t
            elif m.type in ("note_on", "note_off") and m.note in held:
                improv.append((held.pop(m.note), t, m.note))
    recorded = recorded_seconds(record) if record is not None and code == 0 else {}
    return Accompanied(sorted(melody), sorted(improv), listener.got, beat, min(on for on, _, _ in melody), code, lines.rest(), recorded)
