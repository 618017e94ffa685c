"""Hearing the performer's tempo and beat phase from the notes they played (``track``), and the
metrical level a musician would tap (``level``). The grid it returns is ``music.pulse.Pulse``.

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
from typing import Sequence

import numpy as np

from improv.music.pulse import SNAP, JITTER_S, Pulse, groups, salience, swing_ratio
from improv.music.pulse_line import refine

MIN_BPM, MAX_BPM = 40.0, 220.0
# The credit of an onset on the beat is 1, on the half beat 0.6, on a sixteenth 0.35, on a triplet
# 0.25 (less: triplets are where a 3:2 error puts plain eighths).
_CANDIDATES = np.exp(np.linspace(math.log(MIN_BPM), math.log(MAX_BPM), 240))  # 0.7 % apart; refined after
MIN_FIT = 0.45  # below this mean credit the call has no clear pulse
SPLIT_ACCENT = 0.8  # a slower level is not taken where its other beats carry this share of the accents (3/4)
EMPTY_COST = 0.3  # credit lost when every beat of the grid is empty (scaled by the empty share)


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
    sigma = np.maximum(JITTER_S / beats, 0.02)[:, None, None, None]
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
    # ... only the beats inside the call count: one that starts on an off-beat (a pickup) does not
    # own the beat before its first note (counting that one as empty put a 5-note call at 120
    # below the grids 6 % off, and it was heard at 80).
    first_x, last_x = x[:, 0] - phases[c, k], x[:, -1] - phases[c, k]
    span = np.floor(last_x + 0.15) - np.ceil(first_x - 0.15) + 1
    score = fit_c - EMPTY_COST * (1 - np.minimum(occupied / span, 1.0)) - prior_weight * np.abs(np.log2(_CANDIDATES / prior_bpm))
    b = int(np.argmax(score))
    bpm, phase, fit = float(_CANDIDATES[b]), float(phases[b, k[b]]), float(fit_c[b])
    if fit < MIN_FIT:
        return None
    bpm, origin, bent = refine(times, bpm, times[0] + phase * 60.0 / bpm, counts=counts)
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
        bpm, origin, bent = refine(times, bpm, origin, swing, counts=counts)
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
    tol = np.maximum(JITTER_S * 1.5, 0.05 * beat)  # seconds an onset may sit off a grid point

    def held(b: float, o: float) -> float:  # weighted share of onsets on b's sixteenths or triplets
        pos = (times - o) / b
        f = pos - np.floor(pos)
        d = np.min(np.abs(f[:, None] - SNAP[None, :]), axis=1) * b
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
