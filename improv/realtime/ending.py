"""The ending rule (``serve.rule_ending``): an answer's last note lands where the voice's real
answers land, against the call's key: on its tonic, on another tonic-triad tone (the third or
the fifth), or elsewhere, as often as they do.

Why: an ear caught it in the folk demo (none of five finished answers ended on its tonic: a third,
the leading note, the dominant, a step above), and real base answers end on the tonic triad 54 %
of the times they end on a beat, improv's 34-44 %. The old cadence rule (``rule_cadence``) pushed
every note of the answer's last fifth toward the triad and a beat, and made cadences 2-3 times as
common as real ones; this one bends only the note that is likely the last, and only as far as the
voice's own endings go.

How: the shares are a fact of the voice (``serve.ending_shares``: the tonic's and the triad's
shares of its real answers' last notes, read from the pairs of its *training* pieces,
``benchmarks/bench_ending.py``). At the pitch of a line's note that is likely the answer's last
(the next note, at the call's pace, would come after the answer's end), the three classes'
probabilities are moved toward those shares: each class's logits get ``strength * log(share /
mass)``, so at strength 1 the note is drawn from the real answers' endings exactly (the model
still chooses the note within a class). One of ``realtime.processors``' rules, run after every
other (its shares must hold of the distribution the note is drawn from); lines only, and only
for the voices named.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from improv.music.keys import tonic_triad_pitch_classes
from improv.music.tokenizer import PITCH

if TYPE_CHECKING:
    from improv.realtime.processors import Step

Bend = tuple[np.ndarray, "np.ndarray | None"]


def likely_last(step: Step, row: np.ndarray) -> bool:
    """The note under way is likely the answer's last: its next onset, one of the call's
    inter-onset times later (at the density dial), would come at or after the answer's end."""
    reading, sampling = step.reading, step.sampling
    if step.end is None or reading.call_density <= 0:
        return False
    gap = 1.0 / (reading.call_density * sampling.density_dial)
    return step.landing(row) + gap >= step.end - 1e-6


def ending_classes(tonality: tuple[int, bool], size: int) -> np.ndarray:
    """Each pitch's class against the key: 0 the tonic, 1 the third or the fifth, 2 any other."""
    tonic, minor = tonality
    pcs = np.arange(size) % 12
    triad = np.isin(pcs, sorted(tonic_triad_pitch_classes(tonic, minor)))
    return np.where(pcs == tonic % 12, 0, np.where(triad, 1, 2))


def ending(step: Step, field: int, row: np.ndarray, logits: np.ndarray, mask: np.ndarray | None, strength: float, shares: tuple[float, ...] = ()) -> Bend:
    """The likely last note of a line: its class (tonic, triad, other) drawn toward the voice's
    real endings, ``shares`` (the tonic's, the triad's other tones'; none: the voice has none
    known, nothing is bent). ``answer_processors`` gives each voice its own."""
    reading = step.reading
    if field != PITCH or len(shares) != 2 or reading.tonality is None or reading.max_voices != 1 or not step.new_onset(row) or not likely_last(step, row):
        return logits, mask
    tonic_share, triad_share = shares
    wanted = np.array([tonic_share, triad_share, max(1.0 - tonic_share - triad_share, 0.0)])
    size = min(len(logits), 128)  # pitches (BOS and EOS are no class)
    classes = ending_classes(reading.tonality, size)
    allowed = np.isfinite(logits[:size]) if mask is None else mask[:size] & np.isfinite(logits[:size])
    if not allowed.any():
        return logits, mask
    z = np.where(allowed, logits[:size], -np.inf)
    p = np.exp(z - z.max())
    mass = np.bincount(classes[allowed], weights=p[allowed], minlength=3) / p.sum()
    bend = np.zeros(3)
    known = (mass > 0) & (wanted > 0)  # a class the mask leaves out, or the voice never ends on, stays as it is
    bend[known] = strength * np.log(wanted[known] / mass[known])
    out = logits.copy()
    out[:size] += bend[classes]
    return out, mask
