"""The performer's metre from the notes of a call: beats per bar (2, 3, 4, 6 or 8 of the beats
heard) and where the bar starts, from the accents on the beats (velocity, length, low notes,
repetition) and the phrase's edges. Pure, as ``music.pulse`` whose grid it reads.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

import numpy as np

from improv.music.pulse import Pulse

EDGE_END, EDGE_START = 0.6, 0.15  # metre: the bonus of a bar line where the call ends, and where it starts
EDGE_PICKUP = 0.15  # ... and on the beat after an off-beat first note (a short pickup)
SET_BAR = 1.5  # ... and on the set's bar lines, where the call kept the set's grid
# A bar is heard clearly where it beats every bar with other bar lines by this much (else a guess:
# in bench_pulse's fresh calls, the bar line chosen right 0.87 of the time above it, 0.44 below)
BAR_CLEAR = 0.3
TRIPLE_UP_TO = 230.0  # bpm: the fastest double tempo a 3/4 heard at half may be played at
# The bar twice as long where alternate bar lines differ this much in loudness (velocity, in the
# call's standard deviations): the bar found was a half bar (4/4 at 40 bpm heard at 80, its bar
# lines louder than its mid-bars). Where they match, the shorter bar stays.
DOUBLE_CONTRAST = 0.6
# ... where half the tempo heard holds the call too (``Pulse.slower``): its beat may be the performer's
# eighth, and a bar of 4 of them half a 4/4 bar; a slight contrast is enough (bench_pulse2, both sets)
DOUBLE_CONTRAST_SLOWER = 0.15
PRIORS_FAST = {4: 0.15, 3: 0.0, 2: -0.2, 6: 0.0, 8: 0.1}  # metre priors at a heard tempo >= 100 bpm
PRIORS_SLOW = {4: 0.15, 3: 0.0, 2: -0.2, 6: -0.2, 8: -0.3}
W_VEL, W_LEN, W_LOW, W_REP = 1.0, 0.5, 0.4, 0.3  # an accent: velocity z, length (beats), a low note; bars alike


def meter(
    pulse: Pulse,
    onsets: Sequence[float],
    durations: Sequence[float],
    velocities: Sequence[float],
    pitches: Sequence[int],
    prefer: int = 4,
    prefer_downbeat: int | None = None,
) -> Pulse:
    """``bars``, and where the beat heard may be two of the performer's (a fast 3/4 heard at half
    tempo: its bar lines fall on every other half beat), the bars heard at the double tempo too:
    a clear bar of 3 there is two bars of 3/4, three beats heard, from the downbeat that falls on one."""
    heard = bars(pulse, onsets, durations, velocities, pitches, prefer, prefer_downbeat)
    if prefer_downbeat is not None or heard.beats_per_bar % 3 == 0 or pulse.bpm * 2 > TRIPLE_UP_TO:
        return heard
    fast = bars(replace(pulse, bpm=pulse.bpm * 2), onsets, durations, velocities, pitches, 3)
    if fast.beats_per_bar != 3 or fast.bar_clear <= max(heard.bar_clear, BAR_CLEAR):
        return heard
    down = fast.downbeat + 3 * (fast.downbeat % 2)  # a bar line of the fast grid on one of ours
    return replace(heard, beats_per_bar=3, downbeat=(down // 2) % 3, bar_clear=fast.bar_clear)


def bars(
    pulse: Pulse,
    onsets: Sequence[float],
    durations: Sequence[float],
    velocities: Sequence[float],
    pitches: Sequence[int],
    prefer: int = 4,
    prefer_downbeat: int | None = None,
) -> Pulse:
    """``pulse`` with its beats per bar (2, 3 or 4) and downbeat, from the accents on its beats:
    velocity, length (until the note ends or the next onset), low notes and repetition (a bar's
    pattern coming back). ``prefer`` wins unless another metre is clearly better; with
    ``prefer_downbeat`` (a beat index: the set's bar lines, where the call kept the set's grid), so
    do the set's bar lines, as players trading fours keep counting the same bars."""
    t = np.asarray(onsets, dtype=np.float64)
    if len(t) < 4:
        return pulse
    x = (t - pulse.origin) / pulse.beat_s
    k = np.round(x).astype(np.int64)
    on = np.abs(x - k) < 0.15
    if np.count_nonzero(on) < 2:  # two beats struck and the call's edges can place a bar
        return pulse
    lo = int(k[on].min())
    hi = max(int(k[on].max()), int(np.floor(x.max())))  # the beats the call sounds through (empty ones are weak)
    span = hi - lo + 1
    accent = np.zeros(span)
    order = np.argsort(t)
    dur = np.asarray(durations, dtype=np.float64)
    vel = np.asarray(velocities, dtype=np.float64)
    pit = np.asarray(pitches, dtype=np.float64)
    vz = (vel - vel.mean()) / max(vel.std(), 4.0)
    low = pit <= np.percentile(pit, 30) if len(pit) > 3 else np.zeros(len(pit), dtype=bool)
    sorted_t = t[order]
    after = np.searchsorted(sorted_t, t + 0.04, side="right")  # the next onset that is not this chord
    nxt = np.where(after < len(t), sorted_t[np.minimum(after, len(t) - 1)] - t, dur)
    length = np.minimum(np.maximum(dur, nxt), 4 * pulse.beat_s) / pulse.beat_s
    strength = W_VEL * np.clip(vz, -1.5, 2.5) + W_LEN * np.minimum(length, 3.0) + W_LOW * low
    count = np.zeros(span)
    np.add.at(accent, k[on] - lo, strength[on])  # a beat's accent: the mean of its notes'
    np.add.at(count, k[on] - lo, 1.0)
    accent = np.where(count > 0, accent / np.maximum(count, 1), np.nan)
    accent = np.nan_to_num(accent, nan=float(np.nanmin(accent)) - 0.5)  # an empty beat is weak
    # At a fast heard tempo the bar may hold 8 of its beats (4/4 heard in eighths).
    fast = pulse.bpm >= 100
    priors = dict(PRIORS_FAST if fast else PRIORS_SLOW)
    priors[prefer] = priors.get(prefer, 0.0) + 0.1
    # The phrase's edges: a call traded in whole bars ends at a bar line (its last note held up to
    # it) and mostly starts on one (or a short pickup before it), as players trading fours do.
    end = int(np.round((np.max(t + dur) - pulse.origin) / pulse.beat_s)) - lo
    first = float(x[order[0]]) - lo
    start = int(round(first)) if abs(first - round(first)) < 0.15 else None
    pickup = math.ceil(first) if start is None else None  # an off-beat first note leads into the next beat
    # The beats up to the call's end count too (a short call holds fewer beats than a bar: its
    # end and its first note still say where bars fall); past the last onset they are neutral.
    seen = float(accent.mean())
    if end >= span:
        accent = np.append(accent, np.full(end + 1 - span, np.nan))
    scores: list[tuple[float, int, int]] = []
    for bpb, prior in priors.items():
        for d in range(bpb):
            lines = accent[d::bpb]
            lines = lines[~np.isnan(lines)]
            score = (float(lines.mean()) - seen if len(lines) else 0.0) + prior
            score += EDGE_END * ((end - d) % bpb == 0)
            score += SET_BAR * (prefer_downbeat is not None and _nested(prefer, (prefer_downbeat - lo) % prefer, bpb, d))
            score += EDGE_START * (start is not None and (start - d) % bpb == 0) + EDGE_PICKUP * (pickup is not None and (pickup - d) % bpb == 0)
            if span >= 2 * bpb:  # repetition: bars that look alike (consecutive bars' correlation)
                bars = accent[d : d + (span - d) // bpb * bpb].reshape(-1, bpb)
                if len(bars) >= 2:
                    c = bars - bars.mean(axis=1, keepdims=True)
                    norm = np.sqrt((c * c).sum(axis=1))
                    both = norm[:-1] * norm[1:]
                    corr = np.where(both > 1e-9, (c[:-1] * c[1:]).sum(axis=1) / np.maximum(both, 1e-9), 0.0)
                    score += W_REP * float(corr.mean())
            scores.append((score, bpb, d))
    best, bpb, d = max(scores)
    # How clear: the margin over the best bar whose bar lines fall elsewhere (a bar of 4 and its
    # half or its double, in step, enter on the same bar lines: no rival).
    rivals = [sc for sc, b, e in scores if not _nested(bpb, d, b, e)]
    clear = best - max(rivals) if rivals else best
    loud = np.zeros(span)
    np.add.at(loud, k[on] - lo, vz[on])
    if prefer_downbeat is not None and _nested(prefer, (prefer_downbeat - lo) % prefer, bpb, d):
        bpb, d = prefer, (prefer_downbeat - lo) % prefer  # the set's bars go on, their length too
    else:
        contrast = DOUBLE_CONTRAST_SLOWER if pulse.slower else DOUBLE_CONTRAST
        bpb, d = _double(np.where(count > 0, loud / np.maximum(count, 1), np.nan), bpb, d, contrast, end, start)
    return replace(pulse, beats_per_bar=bpb, downbeat=(lo + d) % bpb, bar_clear=round(float(clear), 6))


def _nested(bpb: int, d: int, other: int, e: int) -> bool:
    """The bar lines of one bar (beats per bar, downbeat) all among the other's."""
    short, ds, long, dl = (bpb, d, other, e) if bpb <= other else (other, e, bpb, d)
    return long % short == 0 and (dl - ds) % short == 0


def _double(loud: np.ndarray, bpb: int, d: int, contrast: float = DOUBLE_CONTRAST, end: int | None = None, start: int | None = None) -> tuple[int, int]:
    """(beats per bar, a downbeat): twice ``bpb`` (up to 8) where the bar lines found alternate
    loud and soft (the louder ones start the real bars). ``loud``: each beat's mean velocity
    z-score, NaN where empty."""
    if 2 * bpb > 8:
        return bpb, d
    first, second = loud[d :: 2 * bpb], loud[d + bpb :: 2 * bpb]
    first, second = first[~np.isnan(first)], second[~np.isnan(second)]
    if not len(first) or not len(second):
        return bpb, d
    a, b = float(first.mean()), float(second.mean())
    if abs(a - b) < contrast:
        return bpb, d
    for edge, bonus in ((end, EDGE_END), (start, EDGE_START)):
        if edge is not None:
            a += bonus * ((edge - d) % (2 * bpb) == 0)
            b += bonus * ((edge - d - bpb) % (2 * bpb) == 0)
    return 2 * bpb, d if a > b else d + bpb
