"""``serve.keyless_voices``: the key rule off for the voices named there (renaissance by default:
modal music fits a major or minor key estimate badly), on for every other voice."""

from __future__ import annotations

import numpy as np
import pytest

from improv.errors import ImprovError
from improv.evaluation.answers import engine_answer
from improv.model.sampling import SamplingParams
from improv.model.step_model import random_step_model
from improv.music.notes import Note, note_array
from improv.realtime.processors import answer_processors
from improv.settings.load import load_settings
from improv.settings.serve_section import ServeSettings


def strengths(settings: ServeSettings, voice: str) -> dict[str, float]:
    return {p.name: p.strength for p in answer_processors(settings, voice)}


def test_the_key_rule_is_off_for_a_keyless_voice_only():
    s = ServeSettings()
    assert s.keyless_voices == ["renaissance"]
    assert strengths(s, "renaissance")["key"] == 0.0
    assert strengths(s, "bach")["key"] == strengths(s, "")["key"] == 1.0
    others = strengths(s, "bach")
    assert {k: v for k, v in strengths(s, "renaissance").items() if k != "key"} == {k: v for k, v in others.items() if k != "key"}
    assert strengths(ServeSettings(keyless_voices=[]), "renaissance")["key"] == 1.0


def test_keyless_voices_from_the_config_and_a_bad_name_is_one_line():
    assert load_settings(None, ["serve.keyless_voices=[bach, renaissance]"]).serve.keyless_voices == ["bach", "renaissance"]
    with pytest.raises(ImprovError, match="keyless_voices"):
        load_settings(None, ['serve.keyless_voices=[""]'])


def test_the_engine_answers_with_the_named_voices_rules():
    """The same model, call and seed: named as a keyless voice its answer may leave the call's key
    (a random model strays often); named otherwise it keeps to it as before."""
    model = random_step_model(hidden_size=16, embed_dim=8, seed=3)
    call = note_array([Note(p, float(i) / 2, 0.5, 80) for i, p in enumerate([60, 64, 67, 72, 67, 64, 60, 62, 64, 65, 67, 69])])  # C major
    c_major = {0, 2, 4, 5, 7, 9, 11}

    def outside(voice: str) -> int:
        total = 0
        for seed in range(10):
            notes = engine_answer(model, ServeSettings(), SamplingParams(), call, span=6.0, bpm=120.0, seed=seed, voice=voice).notes
            total += sum(int(p) % 12 not in c_major for p in notes["pitch"])
        return total

    kept = outside("bach")
    free = outside("renaissance")
    assert kept == 0 and free >= 4, (kept, free)
    assert np.isfinite(free)
