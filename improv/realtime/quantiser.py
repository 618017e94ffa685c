"""Seconds at the keyboard -> token rows on the beat grid, at the current tempo.

The tokenizer's one timing rule, live: an event's offset is measured from where the previous
event lies *on the grid* (error feedback, so rounding never accumulates), chord members get
offset 0 (``performer.chord_s`` decides what a chord is, in wall time), and a silence longer than
the longest offset is shortened to it, timing restarting at the note after it.
"""

from __future__ import annotations

import numpy as np

from improv.music.tokenizer import TOKEN_DTYPE, Tokenizer


class Quantiser:
    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self._spb = tokenizer.steps_per_beat
        self._time_values = tokenizer.time_values
        self._max_steps = tokenizer.max_steps
        self._last_offset = len(tokenizer.time_values) - 1

    def offset(self, onset: float, pos: float | None, chord: bool, bpm: float) -> tuple[int, float]:
        """(offset class, the event's grid position in seconds) for an event at ``onset`` after
        one at grid position ``pos`` (None: the first event, offset 0)."""
        if pos is None:
            return 0, onset
        if chord:
            return 0, pos
        steps = (onset - pos) * bpm / 60 * self._spb
        if steps > self._max_steps + 0.5:  # a long silence: shortened to the longest offset
            return self._last_offset, onset
        cls = self.tokenizer.quantize_time(steps / self._spb)
        return cls, pos + float(self._time_values[cls]) * 60 / bpm

    def row(self, pitch: int, offset: int, duration_s: float, velocity: int, bpm: float) -> np.ndarray:
        tok = self.tokenizer
        return np.array(
            [pitch, offset, tok.quantize_time(duration_s * bpm / 60, minimum=1), tok.quantize_velocity(velocity)],
            dtype=TOKEN_DTYPE,
        )

    def beats(self, cls: int) -> float:
        return float(self._time_values[cls])
