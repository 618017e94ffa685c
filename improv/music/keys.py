"""Keys: the key of a short phrase (``estimate_phrase_key``: Temperley's profile plus its first
and last bass, what the engine uses for a call), the older whole-piece Krumhansl-Schmuckler
estimate (``estimate_key``, kept as the baseline ``benchmarks/bench_keys.py`` measures against),
key names and scales.

Pure numpy, cheap enough to run in the silence before an answer (no music21 on the live path).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])


_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


_PROFILES = np.stack([np.roll(_MAJOR, k) for k in range(12)] + [np.roll(_MINOR, k) for k in range(12)])


_PROFILES = (_PROFILES - _PROFILES.mean(axis=1, keepdims=True)) / _PROFILES.std(axis=1, keepdims=True)


# Temperley's (Kostka-Payne) profiles: what a short phrase's key is read with. On 2-bar phrases of
# Bach chorales and Essen folk songs they find their piece's key far more often than the
# Krumhansl-Kessler ones above (benchmarks/bench_keys.py), which lean to the mediant's minor key.
_PHRASE_MAJOR = np.array([0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057, 0.400])


_PHRASE_MINOR = np.array([0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133, 0.330])


_PHRASE_PROFILES = np.stack([np.roll(_PHRASE_MAJOR, k) for k in range(12)] + [np.roll(_PHRASE_MINOR, k) for k in range(12)])


_PHRASE_PROFILES = (_PHRASE_PROFILES - _PHRASE_PROFILES.mean(axis=1, keepdims=True)) / _PHRASE_PROFILES.std(axis=1, keepdims=True)


_SCALES = (np.array([0, 2, 4, 5, 7, 9, 11]), np.array([0, 2, 3, 5, 7, 8, 10, 11]))  # minor: natural + leading tone


_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]


def estimate_key(pitch_class_weights: np.ndarray) -> tuple[int, bool]:
    """(tonic pitch class, is minor): Krumhansl-Schmuckler, the best-correlated of 24 key profiles."""
    w = np.asarray(pitch_class_weights, dtype=np.float64)
    if w.std() == 0:
        return 0, False
    z = (w - w.mean()) / w.std()
    best = int(np.argmax(_PROFILES @ z))
    return best % 12, best >= 12


def key_name(tonic: int, minor: bool) -> str:
    return f"{_NAMES[tonic]} {'minor' if minor else 'major'}"


def scale_pitch_classes(tonic: int, minor: bool) -> np.ndarray:
    return (_SCALES[minor] + tonic) % 12


def tonic_triad_pitch_classes(tonic: int, minor: bool) -> frozenset[int]:
    """The pitch classes of the key's tonic triad: where a phrase comes to rest."""
    t = int(tonic)
    return frozenset({t % 12, (t + (3 if minor else 4)) % 12, (t + 7) % 12})


# ---- the key of a short phrase ------------------------------------------------------------------


@dataclass(frozen=True)
class PhraseKeyWeights:
    """How much each kind of evidence counts in ``estimate_phrase_key`` (tuned on phrases of
    pieces apart from those its accuracy is measured on: ``benchmarks/bench_keys.py``)."""

    beat_accent: float = 0.0  # a note struck on a beat weighs (1 + this) times its duration
    bar_accent: float = 0.25  # ... and on a downbeat this much more again (when the bar is known)
    longest: float = 2.0  # no note weighs more than this many beats (a held note is one note)
    last_tonic: float = 0.06  # the lowest note of the last onset is the tonic
    last_triad: float = 0.0  # ... or a tone of the tonic triad
    first_tonic: float = 0.06  # the lowest note of the first onset is the tonic
    first_triad: float = 0.03  # ... or a tone of the tonic triad
    lowest_tonic: float = 0.0  # the phrase's lowest note is the tonic


PHRASE_KEY_WEIGHTS = PhraseKeyWeights()


def _triads() -> np.ndarray:
    """(24, 12) bool: the tonic triad's pitch classes of each key (12 major, then 12 minor)."""
    out = np.zeros((24, 12), dtype=bool)
    for k in range(24):
        tonic, third = k % 12, 3 if k >= 12 else 4
        out[k, [tonic, (tonic + third) % 12, (tonic + 7) % 12]] = True
    return out


_TRIADS = _triads()
_TONICS = np.arange(24) % 12


def phrase_key_scores(pitches: Sequence[int] | np.ndarray, onsets: Sequence[float] | np.ndarray, durations: Sequence[float] | np.ndarray, beat: float = 1.0, bar: float = 0.0, weights: PhraseKeyWeights = PHRASE_KEY_WEIGHTS) -> np.ndarray:
    """The score of each of the 24 keys (12 major from C, then 12 minor) for one phrase; see
    ``estimate_phrase_key``."""
    p = np.asarray(pitches, dtype=np.int64)
    t = np.asarray(onsets, dtype=np.float64)
    d = np.asarray(durations, dtype=np.float64)
    scores = np.zeros(24)
    if len(p) == 0 or beat <= 0:
        return scores
    rel = t  # counted from a beat (a downbeat when ``bar`` is given)
    tol = 0.02 * beat  # a played onset a little off the grid is still on it
    on_beat = np.abs(rel / beat - np.round(rel / beat)) * beat <= tol
    on_bar = np.abs(rel / bar - np.round(rel / bar)) * bar <= tol if bar > 0 else np.zeros(len(p), dtype=bool)
    w = np.minimum(np.maximum(d, 0.0) / beat, weights.longest) * (1 + weights.beat_accent * on_beat + weights.bar_accent * on_bar)
    hist = np.bincount(p % 12, weights=w, minlength=12)
    if hist.std() > 0:
        scores += _PHRASE_PROFILES @ ((hist - hist.mean()) / hist.std()) / 12  # the correlation, -1..1
    first, last = t == t.min(), np.abs(t - t.max()) <= tol
    for at, tonic_w, triad_w in ((last, weights.last_tonic, weights.last_triad), (first, weights.first_tonic, weights.first_triad)):
        bass = int(p[at].min()) % 12
        scores += tonic_w * (_TONICS == bass) + triad_w * _TRIADS[:, bass]
    scores += weights.lowest_tonic * (_TONICS == int(p.min()) % 12)
    return scores


def estimate_phrase_key(pitches: Sequence[int] | np.ndarray, onsets: Sequence[float] | np.ndarray, durations: Sequence[float] | np.ndarray, beat: float = 1.0, bar: float = 0.0, weights: PhraseKeyWeights = PHRASE_KEY_WEIGHTS) -> tuple[int, bool]:
    """(tonic pitch class, is minor) of a short phrase: a call of a few bars.

    Onsets and durations in any one unit (seconds or beats) with ``beat`` the length of a beat in
    that unit; onsets are counted from a point on the beat grid (the engine: from the call's first
    onset, which its answer grid takes as a beat), which is also a downbeat when ``bar`` (the
    length of a bar, 0 = not known) is given.

    Evidence, summed per key (``PhraseKeyWeights``): the correlation of Temperley's key profile
    with the pitch classes weighted by duration (at most ``longest`` beats) and metric accent; the
    tonic, or a tone of its triad, in the bass of the first and of the last onset. Measured on
    2-bar phrases of held-out Bach chorales and Essen folk songs against music21's key of their
    piece, the profile does the most (today's ``estimate_key`` leans to the dominant and the
    relative key); the first and last notes gain a little where a phrase begins or ends (up to 5
    points on Essen closing phrases) and lose 2-3 points on bars cut from mid-phrase; accents on
    beats and downbeats change next to nothing (``benchmarks/bench_keys.py`` has the figures).
    """
    best = int(np.argmax(phrase_key_scores(pitches, onsets, durations, beat, bar, weights)))
    return best % 12, best >= 12
