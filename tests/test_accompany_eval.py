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
