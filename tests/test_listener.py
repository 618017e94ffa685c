"""The listener test of `improv eval --duet` (``evaluation.listener``) and ``--dump``: features
relative to the call, a classifier that tells a give-away from real answers and cannot tell
answers drawn like the real ones, folds grouped by call."""

from __future__ import annotations

import numpy as np
import pytest

from improv.evaluation.listener import FEATURES, discriminator_auc, echo_length, features, listener_test, telling_features
from improv.evaluation.response import Turn
from improv.music.notes import Note, note_array

pytest.importorskip("sklearn")
SPB = 12


def line(pitches, durations=None) -> np.ndarray:
    durations = durations or [1.0] * len(pitches)
    starts = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    return note_array([Note(int(p), float(s), float(d), 0) for p, s, d in zip(pitches, starts, durations)])


def phrase(rng: np.random.Generator, low: int = 60) -> np.ndarray:
    pitches = low + rng.choice([0, 2, 4, 5, 7, 9, 11, 12], 8)
    return line(pitches.tolist(), [float(d) for d in rng.choice([0.5, 1.0], 8)])


def test_features_are_relative_to_the_call():
    call = line([60, 62, 64, 65, 67])
    echo = features(Turn(call, call, 1.0, 4.0), SPB)
    named = dict(zip(FEATURES, echo))
    assert named["echo_pitch"] == 5 and named["echo_interval"] == 4 and named["register"] == 0 and named["density"] == 0
    assert named["rhythm_uptake"] == 1.0 and named["empty"] == 0
    # The same answer an octave up: the same intervals, no echo at pitch, twelve semitones higher.
    up = dict(zip(FEATURES, features(Turn(call, line([72, 74, 76, 77, 79]), 1.0, 4.0), SPB)))
    assert up["echo_pitch"] == 0 and up["echo_interval"] == 4 and up["register"] == 12
    empty = dict(zip(FEATURES, features(Turn(call, note_array([]), 1.0, 4.0), SPB)))
    assert empty["empty"] == 1 and empty["density"] < 0
    assert echo_length(call, line([60, 62, 65]), SPB) == 2


def test_the_classifier_tells_a_giveaway_and_not_a_lookalike():
    rng = np.random.default_rng(0)
    calls = [phrase(rng) for _ in range(40)]
    turns = {
        "real": [Turn(c, phrase(rng), 1.0, 4.0, None, i) for i, c in enumerate(calls)],
        "alike": [Turn(c, phrase(rng), 1.0, 4.0, None, i) for i, c in enumerate(calls) for _ in range(2)],
        "improv": [Turn(c, c, 1.0, 4.0, None, i) for i, c in enumerate(calls) for _ in range(2)],  # echoes
    }
    groups = {name: [t.index for t in ts] for name, ts in turns.items()}
    heard = listener_test(turns, groups, SPB, seed=0, trees=50)
    assert heard["discriminator_auc"]["improv"] > 0.95
    assert heard["discriminator_auc"]["alike"] < 0.7
    assert heard["telling_features"][0]["feature"] in ("echo_pitch", "echo_interval", "rhythm_uptake", "motif_uptake")


def test_folds_are_grouped_by_call():
    # A system's answers to one call sound alike, and alike nothing else, though drawn like the
    # real ones: a classifier that has seen some of a call's answers knows the rest; folds grouped
    # by call never let it (ungrouped folds give an AUC near 1 here).
    rng = np.random.default_rng(1)
    real = rng.normal(size=(30, 3))
    other = np.repeat(rng.normal(size=(30, 3)), 4, axis=0) + rng.normal(scale=1e-3, size=(120, 3))
    auc = discriminator_auc(real, list(range(30)), other, [i for i in range(30) for _ in range(4)], trees=50)
    assert auc is not None and auc < 0.75
    assert discriminator_auc(real[:1], [0], other[:3], [0, 0, 0]) is None  # one call: nothing to fold


def test_telling_features_rank_the_giveaway_first():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(50, len(FEATURES)))
    other = rng.normal(size=(50, len(FEATURES)))
    other[:, FEATURES.index("density")] += 3
    top = telling_features(real, other)
    assert top[0]["feature"] == "density" and top[0]["auc"] > 0.9 and top[0]["system"] > top[0]["real"]


def test_the_guided_nll_scores_the_real_answer_under_the_rules():
    from improv.evaluation.answers import answer_nll
    from improv.evaluation.guided import FLOOR, guided_answer_nll
    from improv.evaluation.phrases import cut_pairs
    from improv.model.sampling import SamplingParams
    from improv.model.step_model import random_step_model
    from improv.music.tokenizer import Tokenizer
    from improv.realtime.processors import RULES
    from improv.settings.serve_section import ServeSettings

    tok = Tokenizer()
    rng = np.random.default_rng(0)
    notes = [Note(int(60 + rng.choice([0, 2, 4, 5, 7])), i * 0.5, 0.5, 80) for i in range(48)]
    pair = cut_pairs("x", tok.encode(notes), tok, (4, 4), 2, 120.0, pickup=0.0)[0]
    model = random_step_model(hidden_size=16, embed_dim=8, seed=1)
    bare = ServeSettings(keep_key=False, register="free", phrase_ending=False, **{f"rule_{name}": 0.0 for name in RULES})
    total, scored, floored = guided_answer_nll(model, bare, SamplingParams(), pair, 120.0)
    plain = answer_nll(model, pair.call_rows, pair.answer_rows)[0].sum()
    # No rule: the voice's own likelihood (within what the engine's hearing of the call changes;
    # the first offset is the engine's timing, masked to its grid, and may be floored).
    assert scored == len(pair.answer_rows) and floored <= 1 and abs(total - plain) < 0.15 * plain
    ruled, _, _ = guided_answer_nll(model, ServeSettings(), SamplingParams(), pair, 120.0)
    assert ruled != total
    # A range that rules every real note out costs the floor for each.
    high = ServeSettings(lowest_pitch=100, highest_pitch=108)
    _, scored, floored = guided_answer_nll(model, high, SamplingParams(), pair, 120.0)
    assert floored >= scored > 0 and -np.log(FLOOR) > 9
