"""The answer closes as its call did (``realtime.closing``): a call that ended on a cadence makes
its answer's ending lean to one, a call left open an ending that leans away from the tonic."""

from __future__ import annotations

import dataclasses

import numpy as np

from improv.music.tokenizer import DURATION, N_PITCH, OFFSET, PITCH, Tokenizer
from improv.realtime.answer import Answer, CallReading, Sampling
from improv.realtime.closing import call_closes, close
from improv.realtime.processors import Processor, answer_processors, step_of
from improv.settings.serve_section import ServeSettings

TOK = Tokenizer()
VALUES = TOK.time_values
C = (0, False)


def rows_of(*onsets: tuple[int, ...]) -> tuple[list[np.ndarray], list[bool]]:
    rows, chords = [], []
    for onset in onsets:
        for k, p in enumerate(onset):
            rows.append(np.array([p, 0 if k else 12, 12, 4], dtype=np.uint8))
            chords.append(k > 0)
    return rows, chords


def test_a_call_closes_on_a_beat_on_the_tonic_triad():
    rows, chords = rows_of((60, 64), (62, 65), (48, 55, 64))  # ends on C-G-E
    assert call_closes(rows, chords, 3.0, C)
    assert not call_closes(rows, chords, 3.5, C)  # off the beat
    assert not call_closes(*rows_of((60, 64), (55, 59, 62)), 3.0, C)  # on G-B-D: a half close
    assert not call_closes(rows, chords, None, C) and not call_closes(rows, chords, 3.0, None)  # no grid, no key


def answer(closed: bool, sampled: int = 4) -> Answer:
    mask = np.zeros(N_PITCH, dtype=bool)
    mask[21:109] = True
    reading = CallReading(version=0, voice=0, bpm=120.0, tempo_source="", key="", mask=mask, target=8.0, rows=None, call_rows=None, pos_after_call=None, tonality=C, call_closed=closed)
    return Answer(reading, Sampling(rng=np.random.default_rng(0), sampled=sampled, onsets=sampled, beats=6.0))


def bend(a: Answer, field: int, near_end: bool, offset: int = 12, strength: float = 1.0):
    step = step_of(a, VALUES, near_end)
    row = np.zeros(4, dtype=np.int64)
    row[OFFSET] = offset
    size = N_PITCH if field == PITCH else TOK.sizes[field]
    return Processor("close", close, strength)(step, field, row, np.zeros(size), None)[0]


def test_after_a_call_that_closed_the_ending_leans_to_a_cadence():
    pitch = bend(answer(True), PITCH, near_end=True)  # landing on beat 7
    assert pitch[60] > 0 and pitch[64] > 0 and pitch[67] > 0 and pitch[62] == 0
    assert bend(answer(True), DURATION, near_end=True)[12] > 0  # a beat long
    left_open = bend(answer(False), PITCH, near_end=True)  # a call left open: its answer stays open
    assert left_open[60] < 0 and left_open[62] == 0 and not bend(answer(False), DURATION, near_end=True).any()
    assert not bend(answer(True), PITCH, near_end=False).any()  # not before the ending
    assert not bend(answer(True), PITCH, near_end=True, strength=0.0).any()


def test_the_close_rule_is_on_by_default_and_only_with_phrase_ending():
    on = {p.name: p.strength for p in answer_processors(ServeSettings())}
    assert on["close"] == 1.0
    off = {p.name: p.strength for p in answer_processors(dataclasses.replace(ServeSettings(), phrase_ending=False))}
    assert off["close"] == 0.0


def test_the_engine_reads_whether_the_call_closed():
    """The planner reads it from the call as heard: a C-major call ending on C on a beat closed,
    the same call ending on D did not."""
    from support.fakes import phrase, simulate

    from improv.model.step_model import random_step_model
    from improv.realtime.engine import Engine

    def reading(last: int):
        e = Engine(random_step_model(hidden_size=16, embed_dim=8), ServeSettings(silence_ms=600.0), seed=0)
        script = phrase([60, 64, 67, 65, 64, 62, 64, last], step=0.5, length=0.45)
        simulate(e, script, until=script[-1][0] + 0.3)  # the call over, its answer prepared in the silence
        assert e.answer is not None
        return e.answer.reading

    closed = reading(60)
    assert closed.tonality == C and closed.call_closed
    assert not reading(62).call_closed
