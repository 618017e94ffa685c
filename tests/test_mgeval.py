"""MGEval as its authors compute it (``improv.evaluation.mgeval``): checked against scipy's KDE,
integral and entropy where scipy is installed, and on sets whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from improv.evaluation.mgeval import distance_sets, kl_divergence, mgeval, overlap_area, pitch_class_piano_roll
from improv.music.notes import Note, note_array


def test_the_pitch_class_histogram_is_the_piano_rolls():
    # a piano roll at 100 frames a second, each frame the velocity: C for 1 s at 100, E for 0.5 s at 50
    notes = note_array([Note(60, 0.0, 1.0, 100), Note(64, 1.0, 0.5, 50), Note(72, 1.5, 0.5, 100)])
    roll = np.zeros(128)
    for n in notes:
        roll[int(n["pitch"])] += round(float(n["duration"]) * 100) * int(n["velocity"])
    expected = np.array([roll[pc::12].sum() for pc in range(12)])
    assert np.allclose(pitch_class_piano_roll(notes), expected / expected.sum())


def test_distances_leave_each_sample_out_of_its_own_set():
    d = distance_sets(np.array([[0.0], [1.0], [3.0]]), np.array([[0.0], [2.0]]))
    assert sorted(d["intra_gen"]) == [1, 1, 2, 2, 3, 3]
    assert sorted(d["intra_ref"]) == [2, 2]
    assert sorted(d["inter"]) == [0, 1, 1, 1, 2, 3]


def test_overlap_and_kl_are_scipys():
    stats = pytest.importorskip("scipy.stats")
    integrate = pytest.importorskip("scipy.integrate")
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 40), rng.normal(0.8, 1.5, 60)
    pa, pb = stats.gaussian_kde(a), stats.gaussian_kde(b)
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    want = integrate.quad(lambda x: min(pa(x)[0], pb(x)[0]), lo, hi, limit=200)[0]
    assert overlap_area(a, b) == pytest.approx(want, abs=2e-3)
    want_kl = stats.entropy(pa(np.linspace(a.min(), a.max(), 1000)), pb(np.linspace(b.min(), b.max(), 1000)))
    assert kl_divergence(a, b) == pytest.approx(want_kl, rel=1e-6)


def test_a_set_from_the_same_source_overlaps_and_a_foreign_one_does_not():
    rng = np.random.default_rng(1)

    def histograms(scale, n):
        out = []
        for _ in range(n):
            h = np.zeros(12)
            np.add.at(h, rng.choice(scale, 8), rng.uniform(0.5, 2, 8))
            out.append(h / h.sum())
        return np.array(out)

    whole_tone, chromatic = [0, 2, 4, 6, 8, 10], [1, 3, 5, 7, 9, 11]
    reference = histograms(whole_tone, 20)
    same = mgeval(histograms(whole_tone, 10), reference)
    other = mgeval(histograms(chromatic, 10), reference)
    assert same["oa_ref"] > 0.6 and same["oa_gen"] > 0.6, same
    assert other["oa_ref"] < 0.2 and other["oa_gen"] < 0.2, other  # (MGEval's KL compares shapes only: each density is sampled across its own range)
    assert np.isnan(mgeval(reference[:1], reference)["oa_ref"])
