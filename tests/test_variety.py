"""The variety rule (``realtime.variety``): a line's notes already played cost nats a use, capped;
chords are left alone; strength 0 is off; the planner runs it after the other rules."""

from __future__ import annotations

import numpy as np
import pytest

from improv.music.tokenizer import N_PITCH, PITCH, Tokenizer
from improv.realtime.planner import Planner
from improv.realtime.quantiser import Quantiser
from improv.realtime.variety import VARIETY_CAP, VARIETY_NATS, variety
from improv.settings.serve_section import ServeSettings
from tests.test_processors import bend, make_answer


def test_a_lines_used_notes_cost_a_little_each_time_they_were_played():
    answer = make_answer(sampled=4, onsets=4, max_voices=1, line=[60, 62, 60, 64])
    logits, mask = bend(variety, answer, PITCH, offset=6)
    assert mask is None
    assert logits[60] == pytest.approx(-2 * VARIETY_NATS) and logits[62] == pytest.approx(-VARIETY_NATS)
    assert logits[65] == 0.0 and logits[59] == 0.0  # a note not played yet is free
    assert bend(variety, answer, PITCH, strength=2.0, offset=6)[0][62] == pytest.approx(-2 * VARIETY_NATS)
    assert not bend(variety, answer, PITCH, strength=0.0, offset=6)[0].any()


def test_a_pedal_note_costs_at_most_the_cap():
    answer = make_answer(sampled=8, onsets=8, max_voices=1, line=[55] * 8)
    assert bend(variety, answer, PITCH, offset=6)[0][55] == pytest.approx(-VARIETY_CAP * VARIETY_NATS)


def test_chords_and_a_chords_further_notes_are_left_alone():
    chords = make_answer(sampled=3, onsets=3, max_voices=3, line=[60, 60, 60])
    assert not bend(variety, chords, PITCH, offset=6)[0].any()
    within = make_answer(sampled=3, onsets=3, max_voices=1, line=[60, 62, 64], onset_pitches={64})
    assert not bend(variety, within, PITCH, offset=0)[0].any()  # not a new onset: no line note drawn
    first = make_answer(max_voices=1)
    assert not bend(variety, first, PITCH)[0].any()


def test_the_planner_runs_variety_last_at_its_setting():
    quantiser = Quantiser(Tokenizer())
    on = Planner(ServeSettings(), quantiser, 0, 0).processors[0]
    assert on[-1].name == "variety" and on[-1].strength == 1.0
    off = Planner(ServeSettings(rule_variety=0.0), quantiser, 0, 0).processors[0]
    assert off[-1].strength == 0.0
    assert N_PITCH > 128 and np.all(np.isfinite(bend(variety, make_answer(max_voices=1, sampled=1, onsets=1, line=[127]), PITCH, offset=6)[0]))


def test_a_strength_out_of_range_is_a_one_line_error():
    from improv.errors import ImprovError
    from improv.settings.load import load_settings

    with pytest.raises(ImprovError, match="rule_variety"):
        load_settings(None, ["serve.rule_variety=5"])
    assert load_settings(None, ["serve.rule_variety=0"]).serve.rule_variety == 0.0
