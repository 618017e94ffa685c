"""The real answers' likelihood under improv as it plays: the voice *with* the answer's rules
(``realtime.processors``), for the ablation of `improv eval --duet` (each rule off in turn: does
it make the real answers likelier or less likely?).

``ForcedVoice`` wraps a step model: the engine drives it as it drives any voice (the call heard,
the answer prepared, every event drawn through the guide), but each draw returns the next event
of the real answer, and the probability the guided heads gave it is scored. A probability is
floored at ``FLOOR`` (a mask, the key's or the range's, can rule a real note out entirely), and
the answer ends when the real one does or when the engine ends it.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from improv.model.sampling import SamplingParams, probabilities
from improv.music.tokenizer import EOS

FLOOR = 1e-4  # ~9.2 nats: what a ruled-out real value costs


class ForcedVoice:
    """A voice that plays ``rows`` (the real answer) and scores them under the guided heads."""

    def __init__(self, model: Any, rows: Sequence[np.ndarray]) -> None:
        self.model = model
        self.tokenizer = model.tokenizer
        self.rows = [np.asarray(r) for r in rows]
        self._reset()
        self._given: np.ndarray | None = None
        self._expect: Any = None  # the state stepped from the last row given

    def _reset(self) -> None:
        self.index = 0
        self.nll = 0.0
        self.floored = 0  # values the guide gave less than FLOOR (masked out, mostly)

    def __getattr__(self, name: str) -> Any:  # initial_state, prime, ... as the voice's
        return getattr(self.model, name)

    def step(self, state: Any, row: Any) -> Any:
        out = self.model.step(state, row)
        if self._given is not None and row is self._given:
            self._expect = out
        return out

    def sample_event(self, state: Any, rng: np.random.Generator, params: SamplingParams = SamplingParams(), pitch_mask: np.ndarray | None = None, guide: Any = None) -> np.ndarray:
        if state is not self._expect:  # a fresh answer (or one drawn again): score it from its start
            self._reset()
        if self.index >= len(self.rows):
            return self.tokenizer.special(EOS)
        target = self.rows[self.index]

        def pick(field: int, logits: np.ndarray, drawn: SamplingParams, mask: np.ndarray | None) -> int:
            p = float(probabilities(logits, drawn, mask)[int(target[field])])
            self.floored += p < FLOOR
            self.nll -= math.log(max(p, FLOOR))
            return int(target[field])

        row = self.model.draw_event(state, pick, params, pitch_mask, guide)
        self.index += 1
        self._given = row
        return row


def guided_answer_nll(model: Any, settings: Any, params: SamplingParams, pair: Any, bpm: float) -> tuple[float, int, int]:
    """(summed NLL, events scored, values floored) of ``pair``'s real answer as improv's engine
    (``settings``) would have drawn it after the call."""
    from improv.evaluation.answers import engine_answer

    voice = ForcedVoice(model, pair.answer_rows)
    engine_answer(voice, settings, params, pair.call, pair.span, bpm, seed=0)
    return voice.nll, voice.index, voice.floored
