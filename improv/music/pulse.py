"""The performer's pulse from the notes they played: tempo and beat phase (``track``), beats per
bar and the downbeat (``meter``), the swing of the off-beat eighths (``swing_ratio``), and where a
beat position lands in time (``Pulse.time``).

Pure: onsets in seconds in, numbers out; no clock. Plain numpy, cheap enough (a few ms for a call
of 60 notes) to run in the silence before an answer.

How the tempo is found: a comb of candidate beat periods from 40 to 220 bpm, each scored by where
the call's onsets fall on its grid: a note on the beat earns full credit, on the half beat a little
more than half, on a sixteenth or a triplet less (and long or loud notes count more). That credit
is what rules out the 3:2 errors: quarter notes at 60 bpm all lie on the beats of 60 or 120, but
half of them fall on off-beats at 90. Where two metrical levels fit alike (60 and 120 for plain
quarters), the one nearer the prior wins (the tempo of the set, or ``serve.bpm``). The best
candidate is then refined by a least-squares line through the onsets at their grid positions,
recent notes weighted more, so the grid extrapolated past the call follows where the call ended.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

MIN_BPM, MAX_BPM = 40.0, 220.0
# The credit of an onset on the beat is 1, on the half beat 0.6, on a sixteenth 0.35, on a triplet
# 0.25 (less: triplets are where a 3:2 error puts plain eighths).
_SNAP = np.array([0.0, 0.25, 1 / 3, 0.5, 2 / 3, 0.75, 1.0])  # sixteenths and triplets
_JITTER_S = 0.03  # human timing spread the credit tolerates (sd of a performed onset, about)
_CANDIDATES = np.exp(np.linspace(math.log(MIN_BPM), math.log(MAX_BPM), 240))  # 0.7 % apart; refined after
_RECENT_BEATS = 1000.0  # half-life of an onset's weight in the refinement, in beats before the last
MIN_FIT = 0.45
SPLIT_ACCENT = 0.8  # a slower level is not taken where its other beats carry this share of the accents (3/4)
EMPTY_COST = 0.3  # credit lost when every beat of the grid is empty (scaled by the empty share)  # below this mean credit the call has no clear pulse


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
    return k + float(_SNAP[np.argmin(np.abs(_SNAP - f))])


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


def track(
    onsets: Sequence[float],
    prior_bpm: float,
    prior_weight: float = 0.1,
    durations: Sequence[float] | None = None,
    velocities: Sequence[float] | None = None,
    chord_s: float = 0.04,
) -> Pulse | None:
    """Tempo and beat phase of a played phrase, or None without a clear pulse (fewer than four
    onsets, or no grid that most of them fit). ``prior_weight``: credit lost per octave away from
    ``prior_bpm`` in the comb (it settles grids that fit alike: swung eighths fit 120 and 180);
    then the metrical level is the octave of the best grid nearest ``prior_bpm`` (``level``)."""
    if len(onsets) < 4:
        return None
    times, first = groups(onsets, chord_s)
    if len(times) < 4:
        return None
    counts = np.diff(np.append(first, len(onsets)))[-40:].astype(np.float64)  # notes in each onset group
    times, first = times[-40:], first[-40:]  # the recent past decides; bounded work
    order = np.argsort(np.asarray(onsets, dtype=np.float64), kind="stable")
    dur = None if durations is None else np.asarray(durations, dtype=np.float64)[order]
    vel = None if velocities is None else np.asarray(velocities, dtype=np.float64)[order]
    group_dur = None
    if dur is not None:  # a group lasts as long as its longest note, or until the next onset if that is later
        ends = np.array([dur[i] for i in first])
        gaps = np.append(np.diff(times), ends[-1])
        group_dur = np.maximum(ends, np.minimum(gaps, 4 * np.median(gaps)))
    w = salience(times, group_dur, None if vel is None else vel[first])
    rel = times - times[0]
    anchors = np.argsort(-w, kind="stable")[:8]  # the phases tried: a salient onset on a beat
    # Every candidate period and anchor phase at once: (candidates, anchors, onsets) positions.
    beats = 60.0 / _CANDIDATES
    sigma = np.maximum(_JITTER_S / beats, 0.02)[:, None, None, None]
    x = rel[None, :] / beats[:, None]  # (C, N)
    phases = x[:, anchors]  # (C, A)
    y = np.mod(x[:, None, :] - phases[:, :, None], 1.0)  # (C, A, N)
    sigma = sigma[..., 0]
    credit = _kernel(np.abs(y - np.round(y)), sigma)  # on the beat
    credit = np.maximum(credit, 0.6 * _kernel(np.abs(y - 0.5), sigma))  # the half beat
    credit = np.maximum(credit, 0.35 * _kernel(np.abs(y - 0.25 - 0.5 * np.round((y - 0.25) * 2)), sigma))  # sixteenths
    credit = np.maximum(credit, 0.25 * _kernel(np.minimum(np.abs(y - 1 / 3), np.abs(y - 2 / 3)), sigma))  # triplets
    fits = credit @ w / w.sum()  # (C, A)
    # Where two phases fit alike (plain eighths), the one with the phrase's first note on a beat.
    fits = fits + 0.02 * _kernel(np.abs(y[:, :, 0] - np.round(y[:, :, 0])), sigma[..., 0])
    k = np.argmax(fits, axis=1)
    c = np.arange(len(_CANDIDATES))
    fit_c = fits[c, k]
    # Empty beats cost: any multiple of the tempo fits the same onsets, but leaves beats empty.
    y_best = y[c, k]  # (C, N)
    near = np.abs(y_best - np.round(y_best)) < 0.15
    index = np.round(x - phases[c, k][:, None]).astype(np.int64)
    index = np.where(near, index, -(10**9))
    srt = np.sort(index, axis=1)
    occupied = ((np.diff(srt, axis=1) != 0) & (srt[:, 1:] > -(10**9))).sum(axis=1) + (srt[:, 0] > -(10**9))
    span = np.floor((rel[-1] - rel[0]) / beats + 0.15) + 1
    score = fit_c - EMPTY_COST * (1 - np.minimum(occupied / span, 1.0)) - prior_weight * np.abs(np.log2(_CANDIDATES / prior_bpm))
    b = int(np.argmax(score))
    bpm, phase, fit = float(_CANDIDATES[b]), float(phases[b, k[b]]), float(fit_c[b])
    if fit < MIN_FIT:
        return None
    bpm, origin, bent = _refine(times, bpm, times[0] + phase * 60.0 / bpm, counts=counts)
    # Which beats a slower level keeps: where the player leans (velocity, weighed fully), not where
    # the call happens to stop (its last note is held to the call's end, often on a weak beat).
    held_dur = None if group_dur is None else np.append(group_dur[:-1], np.median(group_dur))
    accents = salience(times, held_dur, None if vel is None else vel[first], loud=1.0)
    bpm, origin, slower = level(times, w, bpm, origin, prior_bpm, accents)
    if not MIN_BPM * 0.9 <= bpm <= MAX_BPM * 1.1:
        return None
    pulse = Pulse(bpm=bpm, origin=origin, fit=float(fit), bent=bent, slower=slower)
    swing = swing_ratio(pulse, times, 0.0)
    for _ in range(3):  # the swung off-beats pulled the straight fit: fit again on the swung grid, until it settles
        if swing == 1.0:
            break
        bpm, origin, bent = _refine(times, bpm, origin, swing, counts=counts)
        again = swing_ratio(Pulse(bpm, origin), times, 0.0)
        pulse = Pulse(bpm=bpm, origin=origin, fit=float(fit), swing=again, bent=bent, slower=slower)
        if abs(again - swing) < 0.05:
            break
        swing = again
    return pulse


def level(times: np.ndarray, weights: np.ndarray, bpm: float, origin: float, prior_bpm: float, accents: np.ndarray | None = None) -> tuple[float, float, bool]:
    """(tempo, origin) of the metrical level nearest ``prior_bpm`` (in octaves) among the grid that
    fits best, its doubles and its halves: the level a musician would tap. The set's tempo keeps
    the set's level; for a first call ``serve.bpm`` (100) makes it the one within 71-141 bpm, as
    people tap. A slower level must still hold the phrase (its eighths become the slower level's
    sixteenths; sixteenths or triplets of the faster beat rule it out), and its beats are the ones
    on which the ``accents`` fall (default: ``weights``). Never a 3:2: only octaves of the best fit are tried.
    Returns (tempo, origin, whether half that tempo would hold the phrase too)."""
    accents = weights if accents is None else accents
    beat = 60.0 / bpm
    tol = np.maximum(_JITTER_S * 1.5, 0.05 * beat)  # seconds an onset may sit off a grid point

    def held(b: float, o: float) -> float:  # weighted share of onsets on b's sixteenths or triplets
        pos = (times - o) / b
        f = pos - np.floor(pos)
        d = np.min(np.abs(f[:, None] - _SNAP[None, :]), axis=1) * b
        return float(weights[d < tol].sum() / weights.sum())

    base = held(beat, origin)
    best = (abs(math.log2(bpm / prior_bpm)), 0, bpm, origin)
    valid = {0}  # the levels (octaves from the best fit) that hold the phrase
    for j in (-2, -1, 1, 2):
        b = beat / 2.0**j
        if not MIN_BPM * 0.95 <= 60.0 / b <= MAX_BPM * 1.05:
            continue
        o = origin
        if j < 0:  # which of the faster grid's beats are this level's: where the accents fall
            choices = [origin + m * beat for m in range(2**-j)]

            def on_beats(o: float) -> float:
                pos = (times - o) / b
                return float(accents[np.abs(pos - np.round(pos)) * b < tol].sum()) + 0.01 * (abs((times[0] - o) / b - round((times[0] - o) / b)) * b < tol)

            o = max(choices, key=on_beats)
            accent = np.clip(weights - np.median(weights) - 0.05, 0.0, None)  # what stands out: long, loud notes
            mass = sorted(float(accent[np.abs((times - c) / b - np.round((times - c) / b)) * b < tol].sum()) for c in choices)
            if held(b, o) < base - 0.1 or (mass[-1] > 0.1 and mass[-2] > SPLIT_ACCENT * mass[-1]):
                continue  # the phrase does not fit the slower grid, or its accents fall on both halves (3/4)
        valid.add(j)
        distance = abs(math.log2(60.0 / b / prior_bpm))
        if distance < best[0] - 1e-9:
            best = (distance, j, 60.0 / b, o)
    return round(best[2], 6), best[3], best[1] - 1 in valid


def _kernel(d: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """1 at distance 0, falling to 0 at 2.5 sigma (a cheap Gaussian)."""
    return np.maximum(0.0, 1.0 - (d / (2.5 * sigma)) ** 2)


def _refine(times: np.ndarray, bpm: float, origin: float, swing: float = 1.0, fixed: bool = False, counts: np.ndarray | None = None) -> tuple[float, float, bool]:
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
    _, origin, _ = _refine(times[-40:], bpm, pulse.origin, pulse.swing, fixed=True)
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
