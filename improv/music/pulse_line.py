"""The least-squares lines that time a heard pulse: ``refine`` (one call's onsets at their grid
positions, recent ones weighted more, bent where the call's tempo changed), ``retempo`` (the phase
again at a given tempo) and ``carry`` (one line through this call and the last ones, where the
performer kept the set's grid). Pure, as ``music.pulse``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

import numpy as np

from improv.music.pulse import Pulse, groups, snap, swing_position, unswing

_RECENT_BEATS = 1000.0  # half-life of an onset's weight in the refinement, in beats before the last


def refine(times: np.ndarray, bpm: float, origin: float, swing: float = 1.0, fixed: bool = False, counts: np.ndarray | None = None) -> tuple[float, float, bool]:
    """Least squares through the onsets at their nearest grid positions (sixteenths, triplets;
    off-beat eighths where ``swing`` puts them), recent ones weighted more; again without the
    onsets far from the line; then bent where the call's tempo changed (``_bend``). Returns
    (bpm, origin, bent)."""
    beat = 60.0 / bpm
    keep = np.ones(len(times), dtype=bool)
    bent = False
    for _ in range(3):
        pos = np.array([snap(unswing(x, swing)) for x in (times - origin) / beat])
        recency = np.exp2(-(pos[-1] - pos) / _RECENT_BEATS)
        ww = recency * keep * (1.0 if counts is None else counts)
        if np.count_nonzero(ww) < 3 or np.ptp(pos[ww > 0]) < 1.0:
            break
        a = np.vstack([[swing_position(x, swing) for x in pos], np.ones_like(pos)]).T
        sw = np.sqrt(ww)
        if fixed:  # the period is known: only the phase
            slope, icpt = beat, float(np.sum(ww * (times - beat * a[:, 0])) / np.sum(ww))
        else:
            (slope, icpt), *_ = np.linalg.lstsq(a * sw[:, None], times * sw, rcond=None)
        if slope <= 0:
            break
        beat, origin = float(slope), float(icpt)
        resid = np.abs(times - a @ np.array([beat, origin]))
        keep = resid < max(0.06, 3 * float(np.median(resid)) + 0.01)
    else:
        if not fixed:
            beat, origin, bent = _bend(times, a[:, 0], ww * (resid < 0.15), beat, origin)
    # The origin moved to the beat nearest the last onset: the grid is extrapolated from there.
    k = round((times[-1] - origin) / beat)
    return round(60.0 / beat, 6), origin + k * beat, bent  # no float noise in a tempo reported (120, not 119.99999999999997)


def _bend(times: np.ndarray, x: np.ndarray, w: np.ndarray, beat: float, origin: float) -> tuple[float, float, bool]:
    """(beat, origin) of the line the call's tempo ends on, where it sped up or slowed down inside
    the call (rubato, a gradual change): a parabola through the onsets at positions ``x`` replaces
    the straight line when its bend is clear (3 standard errors, from the residuals' spread), and
    the grid goes on at the tempo and phase the parabola has at the last onset. Else unchanged."""
    use = w > 0
    if np.count_nonzero(use) < 8 or np.ptp(x[use]) < 4.0:
        return beat, origin, False
    xs, ts, ws = x[use], times[use], w[use] / w[use].mean()
    a = np.vstack([xs * xs, xs, np.ones_like(xs)]).T
    sw = np.sqrt(ws)
    coef, *_ = np.linalg.lstsq(a * sw[:, None], ts * sw, rcond=None)
    r = ts - a @ coef
    s2 = float(np.sum(ws * r * r) / max(len(xs) - 3, 1))
    s2 = max(s2, 0.012**2)  # no less than a player's spread: a few onsets can line up by chance
    aw = a * ws[:, None]
    bread = np.linalg.pinv(a.T @ aw)
    cov = bread @ (aw.T @ aw) @ bread * s2
    c, b, a0 = (float(v) for v in coef)
    if abs(c) < 3 * math.sqrt(max(cov[0, 0], 1e-18)):
        return beat, origin, False
    xe = float(xs.max())
    slope = b + 2 * c * xe
    if slope <= 0:
        return beat, origin, False
    return slope, c * xe * xe + b * xe + a0 - slope * xe, True


def retempo(pulse: Pulse, onsets: Sequence[float], bpm: float, chord_s: float = 0.04) -> Pulse:
    """``pulse`` at tempo ``bpm`` (a better-founded one: the set's, blended with the call's), its
    phase fitted again to the onsets at that period."""
    times, _ = groups(onsets, chord_s)
    _, origin, _ = refine(times[-40:], bpm, pulse.origin, pulse.swing, fixed=True)
    return replace(pulse, bpm=bpm, origin=origin)


def carry(pulse: Pulse, onsets: Sequence[float], past: tuple[np.ndarray, np.ndarray, Pulse], chord_s: float = 0.04, strict: bool = False) -> tuple[Pulse, tuple[np.ndarray, np.ndarray, Pulse]] | None:
    """``pulse`` (a call's, at the set's tempo) fitted again together with the calls before it,
    where the performer kept the set's grid through the answer, as players trading fours do: one
    line through the onsets of both, so the tempo rests on a baseline of several calls, not one
    (a 2-bar call alone leaves its tempo 0.5 % uncertain: 40 ms after 12 beats). ``past``: (onset
    group times, note counts, the grid they were heard on). None when the performer did not keep
    it: the call's beats off the set's grid by more than a fifth of a beat, or the joint line
    missing the onsets (``strict``, where ``pulse`` is only the set's grid extrapolated: the call's
    own onsets on the line too). Returns the pulse and the ``past`` to keep for the next call."""
    times, first = groups(onsets, chord_s)
    counts = np.diff(np.append(first, len(onsets))).astype(np.float64)
    past_times, past_counts, grid = past
    x0 = grid.position(pulse.origin)  # the call's beat 0 on the set's grid: a whole beat, if kept
    if abs(x0 - round(x0)) > 0.2 or abs(pulse.bpm / grid.bpm - 1) > 0.04:
        return None
    # Each onset at its place as played (swung as its own call was), in the call's beats.
    pos = [swing_position(snap(pulse.position(t)), pulse.swing) for t in times]
    past_pos = [swing_position(snap(grid.position(t)), grid.swing) - round(x0) for t in past_times]
    x = np.array(past_pos + pos)
    t = np.concatenate([past_times, times])
    w = np.concatenate([past_counts, counts])
    a = np.vstack([x, np.ones_like(x)]).T
    sw = np.sqrt(w)
    (beat, origin), *_ = np.linalg.lstsq(a * sw[:, None], t * sw, rcond=None)
    resid = np.abs(t - a @ np.array([beat, origin]))
    if beat <= 0 or float(np.median(resid)) > 0.03 or float(np.median(resid[: len(past_times)])) > 0.04:
        return None
    own = resid[len(past_times) :]
    if strict and (float(np.median(own)) > 0.02 or float(np.percentile(own, 80)) > 0.035):
        return None
    k = round((times[-1] - origin) / beat)
    joined = replace(pulse, bpm=round(60.0 / float(beat), 6), origin=float(origin + k * beat))
    keep = len(t) - 80  # the last 80 onset groups (a few calls) make the next baseline
    return joined, (t[max(keep, 0):], w[max(keep, 0):], joined)


