"""Play along: what improv plays besides its answers, by ``serve.mode``.

- ``answer``: nothing here (call and response is the engine's own).
- ``accompany``: while the performer plays, a chord and bass per beat under them (``accompanist``),
  each beat decided ``decide_ms`` before it from what was played so far; when they stop, a bar
  more, then silence (or the engine answers: ``serve.after``).
- ``loop``: the last answer again, bar-aligned, until the performer plays (``looper``).
- ``solo``: improv on its own on the set's beat; silent while the performer plays (``soloist``).

The band's notes go out through the engine's ``Output`` (one place that knows what sounds), so a
mode change, a barge-in or shutdown ends them like any other. Pure: no clock, no ports.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from typing import Any

import mido

from improv.music.rhythm import next_grid_point
from improv.realtime.accompanist import Melody, choose_chord, tonic_chord, voice, warm_up
from improv.realtime.looper import Looper
from improv.realtime.notes import LiveNote
from improv.realtime.output import Output, Timed
from improv.realtime.soloist import Soloist
from improv.settings.serve_section import ServeSettings

MODES = ("answer", "accompany", "loop", "solo")


def pulse(bpm: float, anchor: float, clock_grid: tuple[float, float] | None) -> tuple[float, float]:
    """(time of a beat, seconds per beat): the one place play-along asks where the beat is. Today:
    a followed MIDI clock's beat, else ``anchor`` (the performer's first note) at the set's tempo."""
    return clock_grid if clock_grid is not None else (anchor, 60.0 / bpm)


class Band:
    def __init__(self, settings: ServeSettings, output: Output, tokenizer: Any, seed: int = 0) -> None:
        self.s = settings
        self.mode = settings.mode
        self.mutate = settings.mutate
        self.output = output
        self.channel = settings.channel - 1
        self._queue: list[tuple[float, int, int, int, float, float]] = []  # (onset, seq, pitch, velocity, dur, decided)
        self._seq = 0
        # Every band note sent, and when it was decided: what evaluation scores.
        self.played: deque[tuple[LiveNote, float]] = deque(maxlen=4096)  # a chorale is ~400
        self.melody = Melody()
        self.anchor = 0.0  # the first note of the performer's passage: a beat
        self.next_beat: float | None = None  # the next beat to decide (s), while accompanying
        self.last_activity = -math.inf  # the performer's last key down or up
        self.keys: set[int] = set()
        self.chord: tuple[int, ...] | None = None
        self.bass: int | None = None  # the accompaniment's last bass note: the next moves from it
        self.velocity = 64.0
        self.hushed = False  # after a panic: solo waits for the performer before it plays again
        self.looper = Looper(settings.bar_beats, seed)
        self.soloist = Soloist(tokenizer, settings.lowest_pitch, settings.highest_pitch, seed)
        warm_up()

    # ---- the performer --------------------------------------------------------------------------

    def performer_down(self, pitch: int, velocity: int, now: float) -> None:
        self.keys.add(pitch)
        self.hushed = False
        self.last_activity = max(self.last_activity, now)
        if self.mode != "accompany":
            self.looper.stop()  # loop and solo yield at once: the engine silences their notes
            self.soloist.stop()
            self._queue.clear()
            return
        if self.next_beat is None:  # a new passage: its first note is on a beat
            self.melody = Melody()
            self.anchor, self.chord, self.bass = now, None, None
            self.next_beat = now  # advanced past now when the grid is read
        self.melody.down(pitch, now)
        self.velocity = 0.8 * self.velocity + 0.2 * velocity

    def performer_up(self, pitch: int, now: float, bpm: float, played: bool = True) -> None:
        """A key up: ``played`` False for one counted as up without its note-off (stuck, the input
        lost), which is no playing: the band's bar after the last activity is not started again."""
        self.keys.discard(pitch)
        if played:
            self.last_activity = max(self.last_activity, now)
        if self.mode == "accompany":
            self.melody.up(pitch, now, 60 / bpm)

    def answers(self, after: str) -> bool:
        """Whether a call in this mode gets an answer (else the engine prepares none)."""
        return self.mode in ("answer", "loop") or (self.mode == "accompany" and after == "answer")

    @property
    def keeping_time(self) -> bool:
        """Accompanying: the performer plays, or stopped less than a bar ago."""
        return self.next_beat is not None

    # ---- switching ------------------------------------------------------------------------------

    def set_mode(self, mode: str) -> None:
        """The engine has silenced everything; nothing of the old mode goes on."""
        self.mode = mode
        self._queue.clear()
        self.next_beat = None
        self.looper.stop()
        self.soloist.stop()

    def stop(self) -> None:
        """Panic, shutdown, an error: nothing of the band goes on, and solo waits for the performer."""
        self.set_mode(self.mode)
        self.hushed = True

    @property
    def playing(self) -> bool:
        """Something of the band is sounding or planned: accompanying, a loop, a solo."""
        return bool(self._queue) or self.next_beat is not None or self.looper.next_start is not None or self.soloist.playing

    # ---- the engine's turn ----------------------------------------------------------------------

    def play(self, now: float, out: list[Timed], bpm: float, clock_grid: tuple[float, float] | None) -> None:
        if self.next_beat is not None:
            self._accompany(now, bpm, clock_grid)
        fill = self.looper.fill_at(bpm)
        if fill is not None and now >= fill:
            for onset, pitch, velocity, dur in self.looper.next_repeat(bpm, self.mutate):
                self._push(onset, pitch, velocity, dur, now)
        late = self.s.late_ms / 1000
        while self._queue and self._queue[0][0] <= now:
            onset, _, pitch, velocity, dur, decided = heapq.heappop(self._queue)
            if now - onset > late or onset < self.output.sent_until:
                continue  # a stall: a late band note is dropped, never sent out of time
            self.output.start(mido.Message("note_on", channel=self.channel, note=pitch, velocity=velocity), onset, dur, out)
            self.played.append((LiveNote(pitch, onset, onset + dur, velocity, self.channel), decided))

    def next_time(self, bpm: float) -> float | None:
        times = [self._queue[0][0]] if self._queue else []
        if self.next_beat is not None:
            times.append(self.next_beat - self.s.decide_ms / 1000)
        fill = self.looper.fill_at(bpm)
        if fill is not None:
            times.append(fill)
        return min(times) if times else None

    def work_at(self, bpm: float) -> float | None:
        """When ``think`` will have solo work (the next event to sample): a soft wake-up, not a
        deadline: ``due`` has nothing to do then, and a loop that calls ``due`` at a deadline
        already past never gets to think."""
        return self.soloist.until - self._ahead(bpm) if self.mode == "solo" and self.soloist.playing else None

    def _ahead(self, bpm: float) -> float:
        return max(self.s.lookahead_ms / 1000, 60 / bpm)

    def _push(self, onset: float, pitch: int, velocity: int, dur: float, decided: float) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (onset, self._seq, pitch, velocity, dur, decided))

    # ---- accompany ------------------------------------------------------------------------------

    def _accompany(self, now: float, bpm: float, clock_grid: tuple[float, float] | None) -> None:
        origin, beat = pulse(bpm, self.anchor, clock_grid)
        decide = self.s.decide_ms / 1000
        bar = self.s.bar_beats
        while self.next_beat is not None:
            t = next_grid_point(max(self.next_beat, now + 1e-4), origin, beat)  # never a beat already begun
            if now < t - decide:
                self.next_beat = t
                return
            if t > self.last_activity + bar * beat + 1e-6 and (not self.keys or t > self.last_activity + self.s.hold_bars * bar * beat + 1e-6):
                # The performer stopped a bar ago, or has held keys with nothing else for
                # hold_bars (a note-off lost to an xrun looks just so): stop keeping time, the
                # keys counted as up so that the next passage ends a bar after its last key again.
                self.next_beat = None
                self.keys.clear()
                return
            self._decide_beat(t, now, beat, round((t - origin) / beat) % bar)
            self.next_beat = t + beat / 2  # the grid point after this one

    def _decide_beat(self, t: float, now: float, beat: float, position: int) -> None:
        if self.melody.current() is None:
            return
        velocity = int(max(20, min(110, self.velocity * 0.75)))
        if self.s.accompanist == "tonic":
            if self.chord is not None and position != 0:
                return  # the baseline strikes once per bar (and at the first beat it hears)
            chord, length = tonic_chord(self.melody), self.s.bar_beats * beat
        else:
            chord, length = choose_chord(self.melody, self.chord, t, beat, position), beat
        self.chord = chord
        pitches = voice(chord, self.melody.lowest, self.bass)
        self.bass = pitches[0]
        for i, p in enumerate(pitches):
            self._push(t, p, min(127, velocity + (8 if i == 0 else 0)), length * 0.95, now)

    # ---- solo -----------------------------------------------------------------------------------

    def start_solo(self, now: float, bpm: float, anchor: float, clock_grid: tuple[float, float] | None) -> None:
        """Solo from the next beat of the set's grid at least half a beat away."""
        origin, beat = pulse(bpm, anchor, clock_grid)
        self.soloist.start(next_grid_point(now + beat / 2, origin, beat))

    def wants_work(self, now: float, bpm: float) -> bool:
        return self.mode == "solo" and self.soloist.wants_work(now, self._ahead(bpm))

    def work(self, now: float, model: Any, params: Any, bpm: float) -> int:
        note = self.soloist.work(model, params, bpm)
        if note is not None:
            onset, pitch, velocity, dur = note
            self._push(onset, pitch, velocity, dur, now)
        return 1
