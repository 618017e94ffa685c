"""MGEval's relative measure as Yang & Lerch (2018) and their code (``mgeval``) compute it, for
two sets of samples: a generated set and a reference set.

* Per sample, a feature vector; here MGEval's ``total_pitch_class_histogram``: the piano roll
  (100 frames a second, each frame the note's velocity) summed per pitch class, so each note
  weighs its duration times its velocity (``pitch_class_piano_roll``).
* Intra-set distances: each sample's Euclidean distance to every other sample of its own set
  (leave one out); inter-set distances: each generated sample's distance to every reference one.
* Each distance set is smoothed by a Gaussian KDE (scipy's ``gaussian_kde``: Scott's bandwidth,
  std with ddof 1 times n^(-1/5)), and each intra-set density is compared with the inter-set one:
  the **overlap area** (the integral of the smaller density between the two sets' smallest and
  largest distance, as ``mgeval.utils.overlap_area``) and the **KL divergence** (as
  ``mgeval.utils.kl_dist``: each density sampled at 1000 points across its own data's range, then
  ``scipy.stats.entropy`` of the two normalised samplings; the quirk is MGEval's and is kept).

The paper reads both directions: ``oa_ref`` (the reference set's intra against the inter) asks
whether generated samples sit among the references as they sit among themselves; ``oa_gen``
asks the same of the generated set's own spread. Pure numpy; ``tests/test_mgeval.py`` checks
it against scipy where scipy is installed.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from improv.evaluation.metrics import inter_distances, intra_distances

QUAD_POINTS = 4001  # the overlap's integral, on a grid fine enough for these small distance sets


def pitch_class_piano_roll(notes: np.ndarray) -> np.ndarray:
    """MGEval's pitch-class histogram of one sample (``NOTE_DTYPE``): duration x velocity per pitch
    class (the piano roll's frames summed), normalised; zeros for no notes."""
    notes = np.asarray(notes)
    hist = np.zeros(12)
    if len(notes):
        np.add.at(hist, notes["pitch"].astype(int) % 12, notes["duration"].astype(float) * notes["velocity"].astype(float))
    total = hist.sum()
    return hist / total if total > 0 else hist


def distance_sets(generated: np.ndarray, reference: np.ndarray) -> dict[str, np.ndarray]:
    """(intra generated, intra reference, inter) distances, as MGEval's leave-one-out loops make them."""
    return {"intra_gen": intra_distances(generated), "intra_ref": intra_distances(reference), "inter": inter_distances(generated, reference)}


class _Kde:
    """scipy's one-dimensional ``gaussian_kde`` with Scott's factor."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = np.asarray(data, dtype=float)
        std = float(np.std(self.data, ddof=1)) if len(self.data) > 1 else 0.0
        # scipy raises on a set of equal values; a narrow kernel keeps the measure defined there
        self.bw = max(std * len(self.data) ** (-1 / 5), 1e-6)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=float)[:, None] - self.data[None, :]) / self.bw
        return np.exp(-0.5 * z * z).sum(axis=1) / (len(self.data) * self.bw * np.sqrt(2 * np.pi))


def overlap_area(a: np.ndarray, b: np.ndarray) -> float:
    """``mgeval.utils.overlap_area``: the area under the smaller of the two KDEs, between the two
    sets' smallest and largest value."""
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    if hi <= lo:
        return 1.0
    x = np.linspace(lo, hi, QUAD_POINTS)
    return float(np.trapezoid(np.minimum(_Kde(a)(x), _Kde(b)(x)), x))


def kl_divergence(a: np.ndarray, b: np.ndarray, points: int = 1000) -> float:
    """``mgeval.utils.kl_dist``: KL of A's KDE sampled across A's range against B's across B's."""
    pa = _Kde(a)(np.linspace(a.min(), a.max(), points))
    pb = _Kde(b)(np.linspace(b.min(), b.max(), points))
    pa, pb = pa / pa.sum(), pb / pb.sum()
    keep = pa > 0
    return float(np.sum(pa[keep] * np.log(pa[keep] / np.maximum(pb[keep], 1e-300))))


def mgeval(generated: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> dict[str, float]:
    """MGEval of two sets of feature vectors: ``oa_ref`` / ``kl_ref`` (the reference set's intra
    against the inter distances), ``oa_gen`` / ``kl_gen`` (the generated set's), and the mean
    distances, for scale. NaN where a set has fewer than two samples."""
    if len(generated) < 2 or len(reference) < 2:
        return {k: float("nan") for k in ("oa_ref", "oa_gen", "kl_ref", "kl_gen", "intra_ref", "intra_gen", "inter")}
    d = distance_sets(np.asarray(generated), np.asarray(reference))
    return {
        "oa_ref": overlap_area(d["intra_ref"], d["inter"]),
        "oa_gen": overlap_area(d["intra_gen"], d["inter"]),
        "kl_ref": kl_divergence(d["intra_ref"], d["inter"]),
        "kl_gen": kl_divergence(d["intra_gen"], d["inter"]),
        "intra_ref": float(d["intra_ref"].mean()),
        "intra_gen": float(d["intra_gen"].mean()),
        "inter": float(d["inter"].mean()),
    }
