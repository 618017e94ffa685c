"""``loop``: improv's last answer, repeated bar-aligned until the performer plays again; ``mutate``
draws that share of its notes again on each repeat (the changes add up, as Magenta's mutate does).

Pure: the answer's notes come in as they are played (beats after its first note), the repeats go
out as (onset s, pitch, velocity, duration s). A mutated note keeps its time and length and takes
another pitch of the loop's own pitch classes within a fifth of it: the loop stays in its key.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from improv.music.notes import Note


class Looper:
    def __init__(self, bar_beats: int, seed: int = 0) -> None:
        self.bar_beats = bar_beats
        self.rng = np.random.default_rng(seed)
        self.notes: list[Note] = []  # the answer's, in beats after its first note
        self.recording_from: float | None = None  # the answer's first note (s), while it plays
        self.next_start: float | None = None  # the next repeat's first beat (s), while looping
        self.length_beats = 0.0
        self.repeats = 0
        self.source: int | None = None  # which answer is (or was last) recorded

    def answer_started(self, start: float, source: int) -> None:
        self.notes, self.recording_from, self.next_start, self.repeats, self.source = [], start, None, 0, source

    def record(self, note: Note) -> None:
        if self.recording_from is not None and len(self.notes) < 512:
            self.notes.append(note)

    def answer_finished(self, bpm: float) -> None:
        """The answer ended as planned: loop it from the bar after its end."""
        if self.recording_from is None or not self.notes:
            self.stop()
            return
        end = max(n.start + n.duration for n in self.notes)
        self.length_beats = max(1, math.ceil(end / self.bar_beats - 1e-6)) * self.bar_beats
        self.next_start = self.recording_from + self.length_beats * 60 / bpm
        self.recording_from = None

    def stop(self) -> None:
        self.recording_from = self.next_start = None

    def fill_at(self, bpm: float) -> float | None:
        """When the next repeat is decided: a beat before it starts."""
        return None if self.next_start is None else self.next_start - 60 / bpm

    def next_repeat(self, bpm: float, mutate: float) -> list[tuple[float, int, int, float]]:
        """The next repeat's notes (onset s, pitch, velocity, duration s), ``mutate`` of them drawn again."""
        assert self.next_start is not None
        self._mutate(mutate)
        beat = 60 / bpm
        out = [(self.next_start + n.start * beat, int(n.pitch), int(n.velocity), n.duration * beat) for n in self.notes]
        self.next_start += self.length_beats * beat
        self.repeats += 1
        return out

    def _mutate(self, share: float) -> None:
        count = int(round(share * len(self.notes)))
        if count == 0:
            return
        classes = {int(n.pitch) % 12 for n in self.notes}
        for i in self.rng.choice(len(self.notes), size=count, replace=False):
            pitch = int(self.notes[i].pitch)
            options = [p for p in range(pitch - 7, pitch + 8) if p % 12 in classes and p != pitch and 0 <= p <= 127]
            if not options:
                options = [q for q in (pitch - 2, pitch + 2) if 0 <= q <= 127]
            self.notes[i] = replace(self.notes[i], pitch=int(self.rng.choice(options)))
