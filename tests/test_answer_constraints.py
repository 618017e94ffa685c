"""Hard constraints of an answer: whatever the rules and the model want, every note lies in the
pitch range and no key is struck twice at one onset."""

from __future__ import annotations

import dataclasses

import numpy as np

from improv.evaluation.answers import engine_answer
from improv.model.sampling import SamplingParams
from improv.model.step_model import random_step_model
from improv.music.notes import Note, note_array
from improv.settings.serve_section import ServeSettings


def chords(pitches: list[list[int]], beats: float = 1.0) -> np.ndarray:
    return note_array([Note(p, i * beats, beats, 90) for i, chord in enumerate(pitches) for p in chord])


def test_a_two_key_range_holds_even_for_chords():
    model = random_step_model(hidden_size=16, embed_dim=8, seed=3)
    call = chords([[60, 64, 67], [62, 65, 69], [64, 67, 72], [60, 64, 67]])
    narrow = dataclasses.replace(ServeSettings(), lowest_pitch=60, highest_pitch=61)
    for seed in range(4):
        played = engine_answer(model, narrow, SamplingParams(temperature=1.5), call, span=4.0, bpm=120.0, seed=seed)
        assert len(played.notes) and set(played.notes["pitch"].tolist()) <= {60, 61}, played.notes["pitch"]
        starts = played.notes["start"].round(4)
        for at in set(starts.tolist()):
            struck = played.notes["pitch"][starts == at].tolist()
            assert len(struck) == len(set(struck)), struck


def test_one_key_range_still_answers():
    model = random_step_model(hidden_size=16, embed_dim=8, seed=4)
    call = chords([[60, 64], [62, 65], [64, 67]])
    one = dataclasses.replace(ServeSettings(), lowest_pitch=72, highest_pitch=72, keep_key=False)
    played = engine_answer(model, one, SamplingParams(), call, span=3.0, bpm=120.0, seed=0)
    assert len(played.notes) and set(played.notes["pitch"].tolist()) == {72}


def _answer(mask: np.ndarray, onset_pitches: set[int]):
    from improv.realtime.answer import Answer, CallReading, Sampling

    reading = CallReading(version=0, voice=0, bpm=120.0, tempo_source="", key="", mask=mask, target=8.0, rows=None, call_rows=None, pos_after_call=None, max_voices=3)
    return Answer(reading, Sampling(rng=np.random.default_rng(0), sampled=len(onset_pitches), onsets=1, onset_pitches=set(onset_pitches)))


def test_the_guide_never_drops_the_range_when_the_onset_has_no_key_left():
    from improv.music.tokenizer import N_PITCH, OFFSET, PITCH, Tokenizer
    from improv.realtime.guide import answer_guide

    tok = Tokenizer()
    mask = np.zeros(N_PITCH, dtype=bool)
    mask[60:62] = True
    answer = _answer(mask, {60, 61})
    from improv.realtime.processors import answer_processors

    guide = answer_guide(answer, tok.time_values, False, answer_processors(ServeSettings(rule_texture=0.0)))
    row = np.zeros(4, dtype=np.int64)
    _, offset_mask = guide(OFFSET, row, np.zeros(tok.sizes[OFFSET]), None)
    assert offset_mask is not None and not offset_mask[0] and offset_mask[1:].any()  # no room at this onset: move on
    _, pitch_mask = guide(PITCH, row, np.zeros(N_PITCH), mask.copy())  # offset 0 all the same
    assert pitch_mask is not None and pitch_mask.any() and not (pitch_mask & ~mask).any()
