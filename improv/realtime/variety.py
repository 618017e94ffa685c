"""The variety rule (``serve.rule_variety``): a line that keeps returning to the same few notes
leans away from them, as a tune moves on to new ones.

The listener told folk's answers from the real next two bars by their pitch variety: fewer
distinct pitches a note than the call (-0.03, real +0.06 on 184 pairs), a narrower range (-0.94
semitones against the call's, real +0.49), fewer new pitch classes. No other rule and no sampling
setting moved it (README, "Fifth pass, folk"): the voice circles a few notes of the call's key in
steps. Here each note the answer's line has already played costs ``VARIETY_NATS`` a time it was
played, so a run that turns back on itself (G A G F G A ...) is less likely and the line reaches
notes it has not used. Only for a line answering a line (``max_voices`` 1): a chord's notes are
the texture and voicing rules' business. One of ``realtime.processors``' rules, run last:
after the temperature, one strength, 0 = off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from improv.music.tokenizer import PITCH

if TYPE_CHECKING:
    from improv.realtime.processors import Bend, Step  # (for typing only: processors imports this rule)

VARIETY_NATS = 0.6  # per earlier use of the pitch in the answer's line (at strength 1; 0.3 moved folk's AUC less: README)
VARIETY_CAP = 3  # uses counted at most: a pedal note the voice means may still come back


def variety(step: Step, field: int, row: np.ndarray, logits: np.ndarray, mask: np.ndarray | None, strength: float) -> Bend:
    """At a line's new onset, each pitch the answer's line already played is bent away by
    ``VARIETY_NATS`` a use (up to ``VARIETY_CAP`` uses)."""
    if field != PITCH or step.reading.max_voices != 1 or not step.new_onset(row) or not step.sampling.line:
        return logits, mask
    used = np.bincount(np.asarray(step.sampling.line, dtype=np.int64) % 128, minlength=128)[:128]
    cost = np.zeros(len(logits))
    size = min(len(logits), 128)
    cost[:size] = VARIETY_NATS * strength * np.minimum(used[:size], VARIETY_CAP)
    return logits - cost, mask
