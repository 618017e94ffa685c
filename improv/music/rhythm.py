"""Time in music: a call's tempo from its inter-onset intervals (``estimate_bpm``) and the next
point of a beat grid (``next_grid_point``, where an answer starts).

Pure: times are given, no clock. Plain numpy, cheap enough to run in the silence before an answer.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

GRID_EPS_S = 1e-6  # a decision this close after a grid point is on it (float noise, not music)


def beats_per_bar(meter: tuple[int, int] | None) -> float:
    """Quarter-note beats in a bar of ``meter`` (numerator, denominator); 4 when there is none."""
    return 4.0 * meter[0] / meter[1] if meter else 4.0


def next_grid_point(t: float, origin: float, step: float, eps: float = GRID_EPS_S) -> float:
    """The first point ``origin + k * step`` at or after ``t``; never before ``t``.

    A ``t`` within ``eps`` after a grid point counts as on it (and the result is ``t`` itself):
    the sums that make ``t`` and the grid differ by float noise, and such noise must not cost a
    whole grid step of waiting.
    """
    if step <= 0:
        return t
    k = math.ceil((t - eps - origin) / step)
    return max(origin + k * step, t)


def estimate_bpm(onsets: Sequence[float], around: float, lo: float = 30.0, hi: float = 300.0, chord_s: float = 0.04) -> float | None:
    """The tempo (within an octave centred on ``around``) whose half-beat grid fits the call's
    inter-onset intervals best, or None when no tempo fits well (too few notes, no clear pulse).

    Why an octave around the current tempo: any tempo's double fits the same onsets, so the
    estimate keeps the pulse and lets the current tempo settle the octave.
    """
    times = sorted(onsets)
    distinct: list[float] = []  # one onset per chord (notes within chord_s of its first)
    for t in times:
        if not distinct or t - distinct[-1] >= chord_s:
            distinct.append(t)
    iois = np.diff(np.asarray(distinct, dtype=np.float64))
    iois = iois[iois < 2.5]
    if iois.size < 3:
        return None
    candidates = around * np.exp2(np.linspace(-0.5, 0.5, 121))
    candidates = candidates[(candidates >= lo) & (candidates <= hi)]
    if candidates.size == 0:
        return None
    half_beats = iois[None, :] * candidates[:, None] / 30.0
    fit = np.cos(2 * np.pi * half_beats).mean(axis=1)
    score = fit - 0.05 * np.abs(np.log2(candidates / around))  # ties go to the current tempo
    best = int(np.argmax(score))
    return float(candidates[best]) if fit[best] >= 0.8 else None
