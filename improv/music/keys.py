"""How improv listens: tempo from MIDI clock or from a call, the key of a call, its own echoes.

Pure helpers of the engine: no ports, no clock (times are given). The estimates are plain numpy,
cheap enough to run during the silence before an answer (no music21 on the real-time path).
"""

from __future__ import annotations

import numpy as np

_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])


_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


_PROFILES = np.stack([np.roll(_MAJOR, k) for k in range(12)] + [np.roll(_MINOR, k) for k in range(12)])


_PROFILES = (_PROFILES - _PROFILES.mean(axis=1, keepdims=True)) / _PROFILES.std(axis=1, keepdims=True)


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
