"""The performer's pulse as a grid: ``Pulse`` (tempo, beat phase, bar, swing; where a beat position
lands in time), the swing of the off-beat eighths (``swing_ratio``), and the helpers every part of
the tracker shares (onset groups, salience, snapping to sixteenths and triplets).

Pure: onsets in seconds in, numbers out; no clock. How a pulse is heard from a call is
``music.pulse_track``; the least-squares lines that time it, ``music.pulse_line``; the bar,
``music.metre``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

SNAP = np.array([0.0, 0.25, 1 / 3, 0.5, 2 / 3, 0.75, 1.0])  # sixteenths and triplets
JITTER_S = 0.03  # human timing spread the credit tolerates (sd of a performed onset, about)


@dataclass(frozen=True)
class Pulse:
    """A beat grid: beat k falls at ``origin + k * 60 / bpm`` (straight) and bar lines at beats
    ``downbeat + n * beats_per_bar``; off-beat eighths sit ``swing / (1 + swing)`` of the way
    through their beat (1 = straight, 2 = triplet swing)."""

    bpm: float
    origin: float
    fit: float = 1.0  # mean credit of the call's onsets on this grid (1 = all on beats)
    beats_per_bar: int = 4
    downbeat: int = 0  # a beat index that starts a bar
    swing: float = 1.0
    bent: bool = False  # the call's tempo changed inside it (rubato): the grid goes on from its end
    bar_clear: float = 0.0  # how clearly the bar was heard (``music.metre``): the margin over another bar; 0 = a guess
    slower: bool = False  # half this tempo holds the call too (its beat may be the performer's eighth): ``metre`` weighs longer bars

    @property
    def beat_s(self) -> float:
        return 60.0 / self.bpm

    def position(self, t: float) -> float:
        """Beats from the origin to time ``t``, swing taken out (the inverse of ``time``)."""
        x = (t - self.origin) / self.beat_s
        return unswing(x, self.swing)

    def time(self, position: float) -> float:
        """When beat position ``position`` sounds, with the grid's swing."""
        return self.origin + swing_position(position, self.swing) * self.beat_s

    def next_beat(self, t: float, every: int = 1, phase: int = 0) -> int:
        """The first beat index ``k`` with ``time(k) >= t`` and ``k ≡ phase (mod every)``."""
        k = math.ceil((t - self.origin) / self.beat_s - 1e-9)
        return k + (phase - k) % every

    def next_downbeat(self, t: float) -> int:
        return self.next_beat(t, self.beats_per_bar, self.downbeat)


def swing_position(x: float, ratio: float) -> float:
    """Beat position -> swung position: the half beat moves to ``ratio / (1 + ratio)``, the
    sixteenths with it (each half of the beat stretched or squeezed); triplets stay where they are
    (swing is already their feel)."""
    if abs(ratio - 1.0) < 1e-9:
        return x
    k = math.floor(x + 1e-9)
    f = x - k
    if min(abs(f - 1 / 3), abs(f - 2 / 3)) < 1e-6:
        return x
    s = ratio / (1 + ratio)
    return k + (f * 2 * s if f <= 0.5 else s + (f - 0.5) * 2 * (1 - s))


def unswing(x: float, ratio: float) -> float:
    if abs(ratio - 1.0) < 1e-9:
        return x
    k = math.floor(x + 1e-9)
    f = x - k
    s = ratio / (1 + ratio)
    return k + (f / (2 * s) if f <= s else 0.5 + (f - s) / (2 * (1 - s)))


def snap(position: float) -> float:
    """The nearest sixteenth or triplet of the beat."""
    k = math.floor(position)
    f = position - k
    return k + float(SNAP[np.argmin(np.abs(SNAP - f))])


def groups(onsets: Sequence[float], chord_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(time of each onset group, index of its first note in sorted order): notes struck within
    ``chord_s`` of a group's first are one onset, timed at their mean (a spread chord's centre)."""
    order = np.argsort(np.asarray(onsets, dtype=np.float64), kind="stable")
    times = np.asarray(onsets, dtype=np.float64)[order]
    starts = [0]
    for i in range(1, len(times)):
        if times[i] - times[starts[-1]] >= chord_s:
            starts.append(i)
    bounds = starts + [len(times)]
    centres = np.array([times[a:b].mean() for a, b in zip(bounds, bounds[1:])])
    return centres, np.array(starts, dtype=np.int64)


def salience(times: np.ndarray, durations: np.ndarray | None, velocities: np.ndarray | None, loud: float = 0.3) -> np.ndarray:
    """How much each onset group marks the metre: 1, plus more for a long note (held or followed by
    a gap) and a loud one (``loud`` per standard deviation), relative to the call's own."""
    n = len(times)
    w = np.ones(n)
    if durations is not None and n > 1:
        d = np.maximum(np.asarray(durations, dtype=np.float64), 1e-3)
        w += 0.5 * np.clip(d / np.median(d) - 1.0, 0.0, 2.0)
    if velocities is not None and n > 1:
        v = np.asarray(velocities, dtype=np.float64)
        spread = max(float(v.std()), 4.0)
        w += loud * np.clip((v - v.mean()) / spread, -1.0, 2.0)
    return np.maximum(w, 0.2)


def swing_ratio(pulse: Pulse, onsets: Sequence[float], chord_s: float = 0.04) -> float:
    """The long-to-short ratio of the call's off-beat eighths (1 = straight, 2 = triplet swing),
    1 when fewer than three off-beats are heard or they lie on a straight grid. An off-beat eighth
    is an onset between 0.45 and 0.72 of a beat, alone between the beat and the next one."""
    times, _ = groups(onsets, chord_s)
    x = (times - pulse.origin) / pulse.beat_s
    fracs = []
    for i, xi in enumerate(x):
        k = math.floor(xi + 0.1)
        f = xi - k
        if not 0.45 <= f <= 0.72:
            continue
        others = np.delete(x, i)
        if np.any((others > k + 0.12) & (others < k + 0.88)):
            continue  # sixteenths or triplets around it: not an eighth pair
        fracs.append(f)
    if len(fracs) < 3:
        return 1.0
    f = float(np.median(fracs))
    ratio = f / (1 - f)
    return ratio if ratio >= 1.2 else 1.0
