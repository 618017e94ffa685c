"""How an answer's next event is bent away from what the voice alone would play: a ``Guide`` is
called by ``StepModel.sample_event`` once per head (offset, pitch, duration, velocity) with the
fields already drawn and the logits after the temperature, and returns the logits and mask to
sample from. It runs ``realtime.processors``' list in order: the constraints, then the rules."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from improv.realtime.answer import Answer
from improv.realtime.processors import Processor, step_of

Guide = Callable[[int, np.ndarray, np.ndarray, "np.ndarray | None"], "tuple[np.ndarray, np.ndarray | None]"]


def answer_guide(answer: Answer, values: np.ndarray, cadence: bool, processors: Sequence[Processor]) -> Guide:
    """The answer's bends on each head for its next event, given the fields already drawn
    (``cadence``: the answer is near its end). ``values``: the tokenizer's time values (beats)."""
    step = step_of(answer, values, cadence)

    def guide(field: int, row: np.ndarray, logits: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        for processor in processors:
            logits, mask = processor(step, field, row, logits, mask)
        return logits, mask

    return guide
