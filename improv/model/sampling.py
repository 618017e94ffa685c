"""Sampling one class from a head's logits: temperature, top-k, nucleus (top-p). Pure and seeded.

Why not argmax: the seed tutorials decode with argmax and collapse into one repeated note. A
seeded ``numpy.random.Generator`` makes every draw reproducible: the same seed, the same music.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0  # > 0; below 1 sharpens, above 1 flattens
    top_k: int = 0  # keep the k most likely classes (0 = all)
    top_p: float = 1.0  # keep the smallest set of classes whose probability reaches top_p

    @classmethod
    def from_settings(cls, settings) -> "SamplingParams":
        """From a ``SampleSettings`` config section."""
        return cls(settings.temperature, settings.top_k, settings.top_p)


def probabilities(logits: np.ndarray, params: SamplingParams = SamplingParams(), mask: np.ndarray | None = None) -> np.ndarray:
    """The distribution actually sampled from, after temperature, mask, top-k and top-p.

    ``mask`` (bool, same length) marks the allowed classes; a mask that allows nothing is ignored
    rather than producing an empty distribution.
    """
    z = np.asarray(logits, dtype=np.float64) / params.temperature
    if mask is not None and mask.any():
        z = np.where(mask, z, -np.inf)
    z = z - z.max()
    p = np.exp(z)
    n = p.shape[0]
    if 0 < params.top_k < n:
        # Ties at the k-th value are all kept: the result never depends on sort stability.
        kth = np.partition(p, n - params.top_k)[n - params.top_k]
        p = np.where(p >= kth, p, 0.0)
    p /= p.sum()
    if params.top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        cumulative = np.cumsum(p[order])
        keep = int(np.searchsorted(cumulative, params.top_p * (1 - 1e-12))) + 1
        kept = np.zeros(n, dtype=bool)
        kept[order[:keep]] = True
        p = np.where(kept, p, 0.0)
        p /= p.sum()
    return p


def sample(logits: np.ndarray, rng: np.random.Generator, params: SamplingParams = SamplingParams(), mask: np.ndarray | None = None) -> int:
    """Draw one class index from ``probabilities(logits, params, mask)``.

    Exactly one ``rng.random()`` per call, so streams stay aligned. This is the per-event hot
    path (four draws per event), so it works on one cumulative sum of the kept classes instead of
    building the renormalised distribution.
    """
    # In place on one float64 copy: each numpy call costs about a microsecond here.
    z = np.array(logits, dtype=np.float64)
    if params.temperature != 1.0:
        z /= params.temperature
    if mask is not None and mask.any():
        z[~mask] = -np.inf
    z -= z.max()
    p = np.exp(z, out=z)
    n = p.shape[0]
    if 0 < params.top_k < n:
        kth = np.partition(p, n - params.top_k)[n - params.top_k]
        p[p < kth] = 0.0
    if params.top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        cumulative = p[order].cumsum()
        keep = int(cumulative.searchsorted(params.top_p * cumulative[-1] * (1 - 1e-12))) + 1
        index = int(cumulative[:keep].searchsorted(rng.random() * cumulative[keep - 1], side="right"))
        return int(order[min(index, keep - 1)])
    cumulative = p.cumsum()
    index = int(cumulative.searchsorted(rng.random() * cumulative[-1], side="right"))
    return min(index, n - 1)
