"""What the model has heard: the rolling window of the last events (the performer's and improv's),
and the running recurrent state after them.

The state advances once per event (O(1)); the window exists to re-prime it. Stepping event by
event through a whole session would give the model a history far longer than anything it was
trained on, so once the state has absorbed ``window`` + a little more events, a re-prime from the
window (a zero state, then every window row) runs in the background, one step per think unit, and
replaces the running state when done (events committed meanwhile are stepped on top). A new voice
starts the same way: primed from the window it has not heard.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from improv.music.tokenizer import BOS, TOKEN_DTYPE

DRIFT_SLACK = 14  # the running state may absorb window + this many events before a background re-prime


class Voice(NamedTuple):
    """A model the engine can answer with, and the name the status line gives it."""

    name: str
    model: Any


@dataclass(eq=False)
class WinEvent:
    """An event of the rolling window: its row as the model saw it, and its real timing."""

    index: int  # running count of events since the session began
    row: np.ndarray
    onset: float = 0.0  # seconds
    duration: float = 0.0  # seconds
    pitch: int = BOS
    velocity: int = 0
    chord: bool = False  # joined the previous event's onset (offset 0 by grouping)


class ModelContext:
    def __init__(self, model: Any, window: int) -> None:
        self.model = model
        self.window: deque[WinEvent] = deque(maxlen=window)
        self.capacity = window
        self.n_events = 0
        self.version = 0  # bumps whenever the window changes
        self.pos: float | None = None  # grid position (seconds) of the last event's onset
        self._reprime: tuple[list[np.ndarray], int, Any, int] | None = None  # rows, done, state, last index
        bos = model.tokenizer.special(BOS)
        self.state = model.step(model.initial_state(), bos)  # a session is a piece: it begins with BOS
        self.seen = 1  # rows the running state absorbed since it was zero
        self._append(bos)

    def _append(self, row: np.ndarray, onset: float = 0.0, duration: float = 0.0, pitch: int = BOS, velocity: int = 0, chord: bool = False) -> WinEvent:
        event = WinEvent(self.n_events, row, onset, duration, pitch, velocity, chord)
        self.window.append(event)
        self.n_events += 1
        self.version += 1
        return event

    def hear(self, row: np.ndarray, pos: float, onset: float, duration: float, pitch: int, velocity: int, chord: bool) -> WinEvent:
        """A new event: the model steps it (first: a failure leaves no trace), then it joins the window."""
        state = self.model.step(self.state, row)
        return self.adopt(row, state, pos, onset, duration, pitch, velocity, chord)

    def adopt(self, row: np.ndarray, state: Any, pos: float, onset: float, duration: float, pitch: int, velocity: int, chord: bool = False) -> WinEvent:
        """An event whose state is already computed (an answer note, sampled ahead)."""
        self.state = state
        self.seen += 1
        self.pos = pos
        return self._append(row, onset, duration, pitch, velocity, chord)

    def rows(self) -> np.ndarray:
        return np.stack([e.row for e in self.window]).astype(TOKEN_DTYPE)

    # ---- keeping the state's history bounded ---------------------------------------------------

    @property
    def stale(self) -> bool:
        """The running state has absorbed more than the window holds: an answer re-primes first."""
        return self.seen > len(self.window) or self.seen > self.capacity

    def wants_reprime(self) -> bool:
        return self._reprime is not None or self.seen > self.capacity + DRIFT_SLACK

    def reprime_step(self) -> int:
        """One unit of the background re-prime; returns the units done."""
        if self._reprime is None:
            rows = [e.row for e in self.window]
            self._reprime = (rows, 0, self.model.initial_state(), self.window[-1].index)
        rows, done, state, last = self._reprime
        if done < len(rows):
            self._reprime = (rows, done + 1, self.model.step(state, rows[done]), last)
            return 1
        newer = [e.row for e in self.window if e.index > last]  # heard while priming
        for row in newer:
            state = self.model.step(state, row)
        self.state, self.seen, self._reprime = state, len(rows) + len(newer), None
        return len(newer) + 1

    def cancel_reprime(self) -> None:
        self._reprime = None

    def primed_from(self, rows_count: int, state: Any) -> None:
        """An answer primed from the window (``rows_count`` rows) now is the running state."""
        self.state, self.seen, self._reprime = state, rows_count, None

    def forget_state(self, model: Any = None) -> None:
        """Start the state from zero (a model error, or another voice): re-primed from the window
        in the background, and before the next answer in any case."""
        if model is not None:
            self.model = model
        self.state = self.model.initial_state()
        self.seen = max(len(self.window), self.capacity) + DRIFT_SLACK + 1
        self._reprime = None
