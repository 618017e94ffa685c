"""The echo rule (``serve.rule_echo``): no answer that plays the call back.

The listener's first tell (issue 19): answers opened by playing the call back, the same intervals
going on for 1.9 notes against 0.3 in real answers, and 5 of 24 folk demo answers repeated the
call's first 5-13 notes at pitch. The note that would carry on a copy (of the call's opening at
pitch, at another pitch, or a long run of its intervals anywhere) is bent away; a motif's head,
its rhythm, a figure of three intervals still may come, as real answers take those up. One of
``realtime.processors``' rules: after the temperature, one strength, 0 = off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from improv.music.tokenizer import PITCH
from improv.realtime.shaping import IMITATION_NATS

if TYPE_CHECKING:
    from improv.realtime.processors import Bend, Step  # (for typing only: processors imports this rule)

ECHO_FROM = 2  # notes of the call's top line an answer may open with at pitch before a repeat is bent away
TRANSPOSED_FROM = 3  # ... and with its intervals at another pitch (a fourth note would restate it)
COPY_RUN = 6  # notes of a run of the call's intervals, anywhere in the answer, before the next is bent away
ECHO_NATS = 6.0


def _intervals(line: list[int]) -> list[int]:
    return [b - a for a, b in zip(line, line[1:])]


def echo_targets(line: list[int], call: list[int]) -> set[int]:
    """The pitches that would carry on a copy of the call in the answer's top line ``line``: its
    opening played back at pitch (from the ``ECHO_FROM`` + 1st note), at any transposition (the
    call's first intervals from the ``TRANSPOSED_FROM`` + 1st note: the call a fifth up is still
    the call), and, anywhere, a run of the call's intervals past ``COPY_RUN`` notes."""
    out: set[int] = set()
    k = len(line)
    if ECHO_FROM <= k < len(call) and line == call[:k]:
        out.add(call[k])
    if TRANSPOSED_FROM <= k < len(call) and _intervals(line) == _intervals(call[:k]):
        out.add(line[-1] + call[k] - call[k - 1])
    if k >= COPY_RUN:
        tail, steps = _intervals(line[-COPY_RUN:]), _intervals(call)
        for j in range(len(steps) - COPY_RUN + 1):
            if steps[j : j + COPY_RUN - 1] == tail:
                out.add(line[-1] + steps[j + COPY_RUN - 1])
    return {p for p in out if 0 <= p < 128}


def echo(step: Step, field: int, row: np.ndarray, logits: np.ndarray, mask: np.ndarray | None, strength: float) -> Bend:
    """No answer that plays the call back: not its opening at pitch past ``ECHO_FROM`` notes, nor
    moved to another degree past ``TRANSPOSED_FROM`` (the listener heard answers restate the call
    a fifth up), nor any run of its intervals past ``COPY_RUN`` notes; the note that would go on
    is bent away. A motif's head, its rhythm, a figure of three intervals still may come: real
    answers take those up. Not at ``imitation`` 1, where a restatement may be meant."""
    reading, sampling = step.reading, step.sampling
    if sampling.motif is not None and sampling.motif.strength >= IMITATION_NATS - 1e-9:
        return logits, mask  # at imitation 1 a restatement at pitch may be what the performer asked for
    if field == PITCH and step.new_onset(row) and len(sampling.line) >= ECHO_FROM:
        targets = echo_targets(sampling.line, reading.call_line)
        if targets:
            logits = logits.copy()
            logits[sorted(targets)] -= ECHO_NATS * strength
    return logits, mask
