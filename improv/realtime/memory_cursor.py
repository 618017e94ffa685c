"""One answer's use of the session memory (``realtime.memory``): the memory's distribution mixed
into each head, under the answer's own rules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from improv.music.tokenizer import DURATION, N_PITCH, OFFSET, PITCH, VELOCITY
from improv.realtime.memory_events import Feat

if TYPE_CHECKING:
    from improv.realtime.memory import SessionMemory

Guide = Callable[[int, np.ndarray, np.ndarray, "np.ndarray | None"], "tuple[np.ndarray, np.ndarray | None]"]

# The memory's largest share of each head (adapt 1, much varied evidence), per field, measured on
# the performer's next phrases (bench_learn's idioms, after ten calls): the voices' rhythm is good
# already (a larger offset share costs likelihood), the performer's pitches and dynamics are what
# they lack most.
LAMBDA_MAX = {OFFSET: 0.3, PITCH: 0.75, DURATION: 0.45, VELOCITY: 0.6}
# The voice's own notes outside the performer's scale keep 1 - OUTSIDE_CUT x the pitch head's
# share of their weight (the rest goes to its notes inside): an idiom learned over the set colours
# the whole answer, not only the memory's part of it. A whole-tone performer's answers put 0.10 of
# their weight (duration x velocity) outside the scale at adapt 1, mostly the voice's own
# favourite diatonic tones that the key rule lets through and the cadence leans on.
OUTSIDE_CUT = 1.0


class MemoryCursor:
    """One answer's use of the memory: its share, its fade, and the events just before its next
    one (the call's last notes, then what it has sampled)."""

    def __init__(self, memory: SessionMemory, lam: float, scale: float, rows: Sequence[np.ndarray], call_pc: np.ndarray | None = None, agree: float = 1.0, outside: np.ndarray | None = None) -> None:
        self.memory = memory
        self.lam = lam
        self.scale = scale
        self.call_pc, self.agree = call_pc, agree  # the call's pitch classes, and how far the memory's still hold (realtime.call_fit)
        self._keep = None  # per pitch token: how much of the voice's weight stays (``OUTSIDE_CUT``)
        if outside is not None and outside.any() and agree > 0:
            keep = np.where(outside, max(1.0 - OUTSIDE_CUT * lam * LAMBDA_MAX[PITCH] * agree, 0.0), 1.0)
            self._keep = np.ones(N_PITCH)
            self._keep[:128] = keep[np.arange(128) % 12]
        self._rows = list(rows)
        self.reset()

    def reset(self) -> None:
        """Back to the call's last notes (the answer is drawn again)."""
        self.history: list[Feat] = []
        for row in self._rows:
            self.push(row)

    def push(self, row: Sequence[int]) -> None:
        """An event of the answer, sampled."""
        self.history = (self.history + [Feat(row, self.history[-1] if self.history else None)])[-3:]

    def mix(self, field: int, row: np.ndarray, logits: np.ndarray, closing: bool = False) -> np.ndarray:
        """The head's logits with the memory mixed in: log((1 - lam) softmax(logits) + lam p_memory),
        ``lam`` the memory's say times the head's ``LAMBDA_MAX``."""
        p = self.memory.probs(field, self.history, row, self.scale, self.call_pc, self.agree, closing)
        if p is None or len(p) != len(logits):
            return logits
        lam = self.lam * LAMBDA_MAX[field]
        z = np.asarray(logits, dtype=np.float64)
        q = np.exp(z - z.max())
        if field == PITCH and self._keep is not None and len(q) == len(self._keep):
            kept = q * self._keep
            q = kept if kept.sum() > 0 else q  # nothing of the voice's inside: it keeps its own
        q *= (1 - lam) / q.sum()
        q += lam * p
        with np.errstate(divide="ignore"):
            return np.log(q)

    def bend(self, guide: Guide, closing: bool = False) -> Guide:
        """``guide``, then the memory mixed into what it made of each head: the memory keeps its
        share whatever the answer's rules did (a motif a fifth away would take a whole-tone
        performer's scale away); the masks (range, key, texture) still rule."""

        def mixed(field: int, row: np.ndarray, logits: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
            logits, mask = guide(field, row, logits, mask)
            return self.mix(field, row, logits, closing), mask

        return mixed
