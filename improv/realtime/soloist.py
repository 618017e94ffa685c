"""``solo``: improv plays on its own, sampling the voice one event at a time a little ahead of the
notes, on the set's beat; it yields while the performer plays and takes up again after.

Pure: the engine lends it the model and the sampling parameters and asks for one event at a time
(``work``) while it thinks ahead; out come (onset s, pitch, velocity, duration s).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from improv.music.tokenizer import BOS, DURATION, N_PITCH, OFFSET, PITCH, VELOCITY, Tokenizer

MAX_RESTS = 8  # beats of the model's own silence (an end of piece) before the solo moves on anyway
MAX_AT_ONCE = 8  # notes at one onset at most: a voice stuck at offset 0 moves on a beat


class Soloist:
    def __init__(self, tokenizer: Tokenizer, lowest: int, highest: int, seed: int = 0) -> None:
        self.tokenizer = tokenizer
        self.rng = np.random.default_rng(seed + 7)
        self.mask = np.zeros(N_PITCH, dtype=bool)
        self.mask[lowest : highest + 1] = True  # notes only: no end of piece in the middle of a solo
        self.state: Any = None
        self.origin: float | None = None  # its first beat (s), while playing
        self.pos = 0.0  # beats after the origin of the last event sampled
        self.started = False
        self.at_once = 0  # notes sampled at the current onset
        self.until = -np.inf  # the latest onset sampled (s)

    @property
    def playing(self) -> bool:
        return self.origin is not None

    def start(self, first_beat: float) -> None:
        self.origin, self.pos, self.started, self.until, self.at_once = first_beat, 0.0, False, first_beat, 0

    def stop(self) -> None:
        self.origin = None

    def wants_work(self, now: float, ahead_s: float) -> bool:
        return self.origin is not None and self.until <= now + ahead_s + 1e-9

    def work(self, model: Any, params: Any, bpm: float) -> tuple[float, int, int, float] | None:
        """Sample one event; its note, or None (the model's own end: a rest)."""
        assert self.origin is not None
        if self.state is None:
            self.state = model.step(model.initial_state(), self.tokenizer.special(BOS))
        row = model.sample_event(self.state, self.rng, params, self.mask)
        self.state = model.step(self.state, row)
        tv = self.tokenizer.time_values
        beat = 60 / bpm
        if int(row[PITCH]) >= BOS:
            self.pos += MAX_RESTS
            self.state = None
            self.until = self.origin + self.pos * beat
            return None
        step = float(tv[int(row[OFFSET])]) if self.started else 0.0
        self.at_once = self.at_once + 1 if step == 0 else 1
        if self.at_once > MAX_AT_ONCE:
            step, self.at_once = 1.0, 1
        self.pos += step
        self.started = True
        onset = self.origin + self.pos * beat
        self.until = onset
        duration = max(float(tv[int(row[DURATION])]), 0.125) * beat
        velocity = int(self.tokenizer.velocity_values[int(row[VELOCITY])])
        return onset, int(row[PITCH]), max(1, min(127, velocity)), duration
