"""The outside listener of `improv eval --duet` (``evaluation.outside``): histograms relative to the
call and a linear model, a check beside the tuned listener test."""

from __future__ import annotations

import numpy as np

from improv.evaluation.outside import outside_auc, outside_features
from improv.evaluation.response import Turn
from improv.music.notes import Note, note_array

SPB = 12


def line(pitches, durations) -> np.ndarray:
    starts = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    return note_array([Note(int(p), float(s), float(d), 0) for p, s, d in zip(pitches, starts, durations)])


def phrase(rng: np.random.Generator, low: int = 60, lengths=(0.5, 1.0)) -> np.ndarray:
    pitches = low + rng.choice([0, 2, 4, 5, 7, 9, 11, 12], 8)
    return line(pitches.tolist(), [float(d) for d in rng.choice(lengths, 8)])


def test_features_are_shares_relative_to_the_call():
    call = line([60, 62, 64, 65], [1.0] * 4)
    same = outside_features(Turn(call, call, 1.0, 4.0), SPB)
    down = outside_features(Turn(call, line([48, 50, 52, 53], [1.0] * 4), 1.0, 4.0), SPB)
    assert same.shape == down.shape and not np.allclose(same, down)  # an octave lower is seen
    # the interval histogram (first 25) is the same: the shape did not change
    assert np.allclose(same[:25], down[:25]) and np.isclose(same[:25].sum(), 1.0)


def test_it_tells_a_lower_slower_answer_and_not_a_lookalike():
    rng = np.random.default_rng(1)
    calls = [phrase(rng) for _ in range(40)]
    turns = {
        "real": [Turn(c, phrase(rng), 1.0, 4.0, None, i) for i, c in enumerate(calls)],
        "alike": [Turn(c, phrase(rng), 1.0, 4.0, None, i) for i, c in enumerate(calls) for _ in range(2)],
        "improv": [Turn(c, phrase(rng, 52, (1.0, 2.0)), 1.0, 4.0, None, i) for i, c in enumerate(calls) for _ in range(2)],
    }
    heard = outside_auc(turns, SPB)
    assert heard["improv"] > 0.95
    assert heard["alike"] < 0.7
