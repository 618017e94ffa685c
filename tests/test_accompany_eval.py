"""`improv eval --accompany`'s measures: harmony_ratio, the two-sample AUC, one chorale end to end."""

from __future__ import annotations

import json

import numpy as np

from improv.cli.main import main
from improv.evaluation.accompany import harmony_ratio
from improv.evaluation.two_sample import auc, classifier_auc


def test_harmony_ratio_counts_note_time_under_the_sounding_melody_note():
    melody = [(0.0, 1.0, 64), (1.0, 2.0, 65)]  # E then F
    assert harmony_ratio([(0.0, 1.0, 60)], melody) == 1.0  # C under E: a third
    assert harmony_ratio([(0.0, 2.0, 60)], melody) == 0.5  # ... then a fourth under F: dissonant
    assert harmony_ratio([(0.5, 1.5, 57), (0.0, 1.0, 62)], melody) == 0.5  # A: a fifth (E), a sixth (F); D under E: a second


def test_auc_and_the_classifier():
    assert auc(np.array([3.0, 2.0, 1.0]), np.array([1, 1, 0])) == 1.0
    assert auc(np.array([1.0, 1.0]), np.array([1, 0])) == 0.5
    rng = np.random.default_rng(0)
    x, y, g = rng.normal(size=(200, 3)), np.arange(200) % 2, np.arange(200) // 10
    assert abs(classifier_auc(x, y, g) - 0.5) < 0.15  # the same distribution: no better than chance
    x[y == 1, 1] += 3
    assert classifier_auc(x, y, g) > 0.9


def test_eval_accompany_on_one_chorale(capsys):
    assert main(["eval", "--accompany", "--pieces", "1", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["pieces"] == 1 and r["notes"] > 50
    assert r["anticipation_ms_min"] > 0  # every note decided before its beat
    assert r["grid_ms_median"] == 0.0  # planned on the performer's beat
    assert r["harmony_ratio"] > r["harmony_ratio_tonic_baseline"]


def test_the_melody_guess_packs_its_weights_and_refuses_a_wrong_size():
    import pytest

    from improv.realtime.melody_guess import HIDDEN, INPUTS, MelodyGuess, features, pack, unpack

    rng = np.random.default_rng(0)
    w = (rng.normal(size=(HIDDEN, INPUTS)), rng.normal(size=HIDDEN), rng.normal(size=(12, HIDDEN)), rng.normal(size=12))
    back = unpack(pack(*w))
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(w, back))
    p = MelodyGuess(pack(*w))(features([0, 4, 7, 12], 2, False))
    assert p.shape == (12,) and abs(p.sum() - 1) < 1e-9
    with pytest.raises(ValueError, match="numbers, expected"):
        unpack(pack(w[0], w[1], w[2], w[3][:5]))


def test_the_shipped_guess_prefers_a_step_or_the_same_note():
    """Trained on chorales: after a scale run up to the third, the next beat is near it."""
    from improv.realtime.accompanist import _GUESS
    from improv.realtime.melody_guess import features

    p = _GUESS(features([4, 2, 0, 11], 1, False))  # C major: B C D E, the beat after E
    assert p[[2, 4, 5]].sum() > 0.5  # D, E or F
