"""Time in music: the beats in a bar of a metre and the next point of a beat grid
(``next_grid_point``). A performer's tempo and beat are ``music.pulse``'s.

Pure: times are given, no clock.
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
