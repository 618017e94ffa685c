"""``serve.chord_top_p``: an answer in chords is drawn with its own nucleus (off by default), a
line's with ``sample.top_p``."""

from __future__ import annotations

import numpy as np
import pytest

from improv.errors import ImprovError
from improv.evaluation.answers import engine_answer
from improv.model.sampling import SamplingParams
from improv.model.step_model import random_step_model
from improv.music.notes import Note, note_array
from improv.realtime.planner import Planner
from improv.realtime.quantiser import Quantiser
from improv.settings.load import load_settings
from improv.settings.serve_section import ServeSettings
from tests.test_processors import TOK, make_answer


def test_a_chordal_answer_is_drawn_with_the_chord_nucleus():
    planner = Planner(ServeSettings(chord_top_p=1.0), Quantiser(TOK), 0, 0)
    params = SamplingParams(0.8, 5, 0.9)
    assert planner.answer_params(make_answer(max_voices=1), params) is params  # a line: sample's own
    chords = make_answer(max_voices=4)
    drawn = planner.answer_params(chords, params)
    assert drawn == SamplingParams(0.8, 5, 1.0)  # the temperature knob and top_k kept
    assert planner.answer_params(chords, params) is drawn  # made once per params, not per event
    knob = SamplingParams(1.2, 5, 0.9)
    assert planner.answer_params(chords, knob) == SamplingParams(1.2, 5, 1.0)
    same = SamplingParams(1.0, 0, 1.0)
    assert planner.answer_params(chords, same) is same


def test_chord_top_p_from_the_config_and_a_bad_value_is_one_line():
    assert load_settings(None).serve.chord_top_p == 1.0
    assert load_settings(None, ["serve.chord_top_p=0.9"]).serve.chord_top_p == 0.9
    with pytest.raises(ImprovError, match="chord_top_p"):
        load_settings(None, ["serve.chord_top_p=0"])


def test_the_engine_draws_chords_with_it_and_lines_without():
    """The same model, call, seed and sample nucleus: a chordal call's answer changes with
    chord_top_p, a line's does not."""
    model = random_step_model(hidden_size=16, embed_dim=8, seed=3)
    chords = note_array([Note(p + 12 * (k % 2), float(k), 1.0, 80) for k in range(6) for p in (48, 55, 64)])
    line = note_array([Note(p, float(i) / 2, 0.5, 80) for i, p in enumerate([60, 64, 67, 72, 67, 64, 60, 62])])

    def answers(call: np.ndarray, chord_top_p: float) -> list[list[int]]:
        settings = ServeSettings(chord_top_p=chord_top_p)
        return [engine_answer(model, settings, SamplingParams(top_p=0.5), call, span=6.0, bpm=120.0, seed=seed).notes["pitch"].tolist() for seed in range(4)]

    assert answers(chords, 1.0) != answers(chords, 0.5)
    assert answers(line, 1.0) == answers(line, 0.5)
