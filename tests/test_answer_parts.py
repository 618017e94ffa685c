"""An answer's three parts (``realtime.answer``): the call's reading (never changed), the sampling
state (drawn afresh when a knob moves before the answer starts) and the playback (from the start)."""

from __future__ import annotations

import dataclasses

import pytest
from support.fakes import cc, phrase, simulate

from improv.model.sampling import SamplingParams
from improv.model.step_model import random_step_model
from improv.realtime.engine import Engine
from improv.settings.serve_section import ServeSettings

SETTINGS = ServeSettings(estimate_tempo=False, keep_key=False, silence_ms=600.0, silence_beats=0.0, answer_lead_beats=0.0, phrase_ending=False)
CALL = phrase([60, 62, 64, 65, 67, 65, 64, 62], step=0.3, length=0.25)  # last release at 2.35 s: the call ends at 2.95 s


def sent(e: Engine, script) -> list[tuple[float, int, int]]:
    return [(round(t, 6), m.note, m.velocity) for t, m in simulate(e, script, until=20) if m.type == "note_on" and m.velocity > 0]


def test_a_knob_moved_in_the_silence_redraws_the_answer_as_if_it_had_been_set_from_the_start():
    model = random_step_model(hidden_size=16, embed_dim=8, seed=3)
    moved = Engine(model, SETTINGS, SamplingParams(1.0, 0, 0.95), seed=2)
    simulate(moved, CALL, until=2.8)  # the call heard, the answer drawn ahead in the silence
    speculated = moved.answer
    assert speculated is not None and speculated.playback is None and speculated.sampling.sampled > 0
    reading, first = speculated.reading, speculated.sampling
    played = sent(moved, [(2.8, cc(21, 40))])  # the temperature knob: the answer is drawn again
    assert speculated.sampling is not first and speculated.playback is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        reading.bpm = 90.0  # type: ignore[misc]
    fresh = Engine(model, SETTINGS, SamplingParams(moved.temperature, 0, 0.95), seed=2)
    assert played == sent(fresh, CALL) and len(played) >= 2
