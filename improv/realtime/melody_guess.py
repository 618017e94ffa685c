"""The melody note the next beat will bring, guessed before the performer plays it: a small
network (57 inputs, 64 tanh units, 12 outputs; numpy here, trained by ``training.accompany``)
from the key-relative pitch classes struck at the four beats before, the beat's place in the bar
(counted from the performer's first note) and the mode. Its weights are ``melody_net.WEIGHTS``
(pure data: the live path reads no files).
"""

from __future__ import annotations

import base64

import numpy as np

CONTEXT = 4  # beats of melody looked at
NONE = 12  # no note struck yet at that beat
INPUTS = CONTEXT * 13 + 4 + 1
HIDDEN = 64


def features(before: list[int], position: int, minor: bool) -> np.ndarray:
    """``before``: the key-relative pitch class struck last by each of the CONTEXT beats before
    (the nearest first; NONE where nothing was), ``position``: the beat's place in the bar."""
    x = np.zeros(INPUTS)
    for k, pc in enumerate(before[:CONTEXT]):
        x[k * 13 + pc] = 1.0
    x[CONTEXT * 13 + position % 4] = 1.0
    x[-1] = float(minor)
    return x


def unpack(blob: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    flat = np.frombuffer(base64.b64decode(blob), dtype="<f4").astype(np.float64)
    sizes = [(HIDDEN, INPUTS), (HIDDEN,), (12, HIDDEN), (12,)]
    expected = sum(int(np.prod(shape)) for shape in sizes)
    if len(flat) != expected:
        raise ValueError(f"melody network weights: {len(flat)} numbers, expected {expected}")
    out, at = [], 0
    for shape in sizes:
        n = int(np.prod(shape))
        out.append(flat[at : at + n].reshape(shape))
        at += n
    return out[0], out[1], out[2], out[3]


def pack(w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray) -> str:
    return base64.b64encode(np.concatenate([a.ravel() for a in (w1, b1, w2, b2)]).astype("<f4").tobytes()).decode()


class MelodyGuess:
    def __init__(self, blob: str) -> None:
        self.w1, self.b1, self.w2, self.b2 = unpack(blob)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """P(key-relative pitch class on the beat) for ``features``."""
        z = self.w2 @ np.tanh(self.w1 @ x + self.b1) + self.b2
        p = np.exp(z - z.max())
        return p / p.sum()
