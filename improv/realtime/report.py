"""What a session reports: one ``Exchange`` per call and its answer (the status line, the timing
figures of the demo and the benchmark), and the ``Recorder`` of everything played (performer and
improv), for ``serve --record`` and the demo's file.

The engine fills both as it runs; neither reads a clock nor touches a file.
"""

from __future__ import annotations

from dataclasses import dataclass

from improv.music.midi import Track
from improv.music.notes import Note
from improv.realtime.notes import LiveNote


@dataclass
class Exchange:
    """One call and its answer, for the status line.

    Two different delays lie between the end of the call and the first answer note: the musical
    wait (decision -> the grid point the first note is scheduled on, chosen) and the machine's
    overhead (that note sent late, plus any model work done at the decision because the
    speculation was not ready: a wait may hide it, so it is counted apart).
    """

    number: int
    end_reason: str  # silence | control | max length
    call_notes: int
    call_beats: float
    bpm: float
    tempo_source: str  # config | clock | estimate
    key: str  # "" when keep_key is off
    decided_at: float  # when the call ended: last release + threshold, or the controller's time
    threshold_s: float  # the silence threshold, for the status line (0 for other ends)
    grid: str = ""  # what the first note was aligned to ("beat", ...); "" = at once
    sync_units: int = 0  # model work done after the decision (0 when the speculation was ready)
    sync_s: float = 0.0  # how long that work took on the loop's clock (the engine cannot tell)
    sync_done_at: float | None = None  # when it was done, on the loop's clock
    first_note_at: float | None = None  # scheduled time of the first answer note
    first_sent_at: float | None = None  # when the loop actually sent it
    response_notes: int = 0
    ended: str = ""  # finished | barge-in | panic | error | shutdown
    voice: str = ""  # the voice that answered ("" when there is only one)
    late_dropped: int = 0  # answer notes dropped for being due too long ago (the machine stalled)
    late_shifted_s: float = 0.0  # or how far the answer moved later instead (serve.late_policy)

    @property
    def wait_s(self) -> float | None:
        """The musical wait: decision -> the first note's scheduled time (the grid point)."""
        return None if self.first_note_at is None else self.first_note_at - self.decided_at

    @property
    def send_late_s(self) -> float | None:
        """Scheduled first note -> actually sent (None until the loop sent it)."""
        if self.first_note_at is None or self.first_sent_at is None:
            return None
        return self.first_sent_at - self.first_note_at

    @property
    def overhead_s(self) -> float | None:
        """The machine's part: the first note's lateness and the model work at the decision, as
        time intervals, counted once where they overlap (work that made the note late)."""
        if self.first_note_at is None:
            return None
        sent = self.first_sent_at if self.first_sent_at is not None else self.first_note_at
        late = max(sent - self.first_note_at, 0.0)
        if self.sync_s <= 0 or self.sync_done_at is None:
            return late
        work_start = self.sync_done_at - self.sync_s
        overlap = max(0.0, min(self.sync_done_at, sent) - max(work_start, self.first_note_at))
        return late + self.sync_s - overlap

    @property
    def latency_s(self) -> float | None:
        """End-of-call decision -> first note leaving (beyond the threshold): wait + lateness."""
        first = self.first_sent_at if self.first_sent_at is not None else self.first_note_at
        return None if first is None else first - self.decided_at

    def status_line(self) -> str:
        key = f" · {self.key}" if self.key else ""
        voice = f" · {self.voice}" if self.voice else ""
        late = ""
        if self.late_dropped:
            late = f" · {self.late_dropped} late note{'s' if self.late_dropped > 1 else ''} dropped"
        elif self.late_shifted_s:
            late = f" · moved {self.late_shifted_s * 1000:.0f} ms later after a stall"
        return (
            f"#{self.number} call {self.call_notes} notes / {self.call_beats:.1f} beats"
            f" · {self.bpm:.0f} bpm ({self.tempo_source}){key} · {self._answer_words()}"
            f" · answer {self.response_notes} notes{voice} ({self._ended_words()}){late}"
        )

    def _ended_words(self) -> str:
        # An answer the next call cancelled before its first note was never heard: not a barge-in.
        if self.ended == "barge-in" and self.response_notes == 0:
            return "not begun: the next call came first"
        return self.ended

    def _answer_words(self) -> str:
        wait = self.wait_s
        if wait is None:
            return "no note"
        after = f"the {self.threshold_s * 1000:.0f} ms silence" if self.end_reason == "silence" else f"the {self.end_reason}"
        if self.grid:
            words = f"first note on the {self.grid}, {wait * 1000:.0f} ms after {after}"
        else:
            words = f"first note at once after {after}"
        late = self.send_late_s
        if self.sync_units:
            spent = f": {self.sync_s * 1000:.2f} ms" if self.sync_s > 0 else ""
            sent = f"sent {late * 1000:.2f} ms late, " if late is not None else ""
            return f"{words}, {sent}{self.sync_units} model units at the decision{spent}"
        return f"{words}, sent {late * 1000:.2f} ms late" if late is not None else words


PANS = {"performer": 40, "improv": 88}  # CC10: the performer a little left, improv a little right


class Recorder:
    """Collects the session's notes, performer and improv, for ``serve --record`` and the demo,
    with the tempo each exchange was played at and a marker per exchange, so the file's beats and
    bars are the session's own."""

    def __init__(self) -> None:
        self.t0: float | None = None
        self._open: dict[tuple[str, int, int], tuple[float, int]] = {}
        self.notes: dict[str, list[LiveNote]] = {"performer": [], "improv": []}
        self.tempi: list[tuple[float, float]] = []  # (time, bpm) from then on
        self.marks: list[tuple[float, str]] = []  # (time, text)

    def note_on(self, who: str, channel: int, pitch: int, velocity: int, t: float) -> None:
        if self.t0 is None:
            self.t0 = t
        key = (who, channel, pitch)
        open_note = self._open.get(key)
        if open_note is not None and t - open_note[0] < 1e-3:
            return  # the same key twice at once is one note, not a one-tick blip
        self.note_off(who, channel, pitch, t)  # a re-struck key ends the previous note
        self._open[key] = (t, velocity)

    def note_off(self, who: str, channel: int, pitch: int, t: float) -> None:
        started = self._open.pop((who, channel, pitch), None)
        if started is not None:
            self.notes[who].append(LiveNote(pitch, started[0], t, started[1], channel))

    def tempo(self, t: float, bpm: float, text: str = "") -> None:
        """From ``t`` on the session runs at ``bpm``; ``text`` marks what happens there."""
        if not self.tempi or abs(self.tempi[-1][1] - bpm) > 1e-6:
            self.tempi.append((t, bpm))
        if text:
            self.marks.append((t, text))

    def close(self, t: float) -> None:
        for who, channel, pitch in list(self._open):
            self.note_off(who, channel, pitch, t)

    def beats(self, t: float, default_bpm: float) -> float:
        """Seconds on the session's clock -> beats from its first note, through the tempo changes."""
        t0 = self.t0 or 0.0
        tempi = [(t0, self.tempi[0][1] if self.tempi else default_bpm)] + [(max(at, t0), bpm) for at, bpm in self.tempi]
        beats, (at, bpm) = 0.0, tempi[0]
        for nxt_at, nxt_bpm in tempi[1:]:
            if nxt_at >= t:
                break
            beats += (nxt_at - at) * bpm / 60
            at, bpm = nxt_at, nxt_bpm
        return beats + (t - at) * bpm / 60

    def start_bpm(self, default_bpm: float) -> float:
        return self.tempi[0][1] if self.tempi else default_bpm

    def tempo_changes(self, default_bpm: float) -> list[tuple[float, float]]:
        """(beat, bpm) of every tempo change after the start, for the file's tempo track."""
        return [(self.beats(t, default_bpm), bpm) for t, bpm in self.tempi[1:]]

    def markers(self, default_bpm: float) -> list[tuple[float, str]]:
        return [(self.beats(t, default_bpm), text) for t, text in self.marks]

    def tracks(self, default_bpm: float, programs: tuple[int, int] = (0, 0)) -> list[Track]:
        """One ``midi.Track`` per party (performer, improv), in the session's beats, on General MIDI
        ``programs``. So that a synth keeps the two apart, each part has a channel of its own (a
        performer who played on improv's channel moves to the next one: a channel has one program)
        and its own side of the stereo image."""
        channels = {who: notes[0].channel if (notes := self.notes[who]) else 0 for who in self.notes}
        if channels["performer"] == channels["improv"]:
            channels["performer"] = next(c for c in range(channels["improv"] + 1, channels["improv"] + 17) if c % 16 != 9) % 16
        out = []
        for who, program in zip(("performer", "improv"), programs):
            converted = []
            for n in sorted(self.notes[who], key=lambda n: (n.onset, n.pitch)):
                start = self.beats(n.onset, default_bpm)
                converted.append(Note(n.pitch, start, max(self.beats(n.end, default_bpm) - start, 0.001), n.velocity))
            out.append(Track(who, converted, program=program, channel=channels[who], pan=PANS[who]))
        return out

    def midi(self, default_bpm: float, programs: tuple[int, int] = (0, 0)) -> bytes:
        """The session as a MIDI file: both parts, at the session's tempi, a marker per exchange."""
        from improv.music.midi import midi_bytes

        return midi_bytes(
            self.tracks(default_bpm, programs), self.start_bpm(default_bpm),
            tempo_changes=self.tempo_changes(default_bpm), markers=self.markers(default_bpm),
        )  # fmt: skip
