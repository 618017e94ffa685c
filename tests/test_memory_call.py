"""An answer reads its own call from its first note (``SessionMemory.with_call``): a copy of the
memory learns the call when the answer is prepared; the memory itself learns it only after the
answer is drawn, and a call the performer plays on from is never learned twice."""

from __future__ import annotations

import dataclasses

import numpy as np

from improv.evaluation.learning import play_calls, session_rows
from improv.evaluation.licks import licks
from improv.model.step_model import random_step_model
from improv.music.tokenizer import Tokenizer
from improv.realtime.engine import Engine
from improv.realtime.memory import SessionMemory
from improv.settings.serve_section import ServeSettings

TOK = Tokenizer()
BPM = 100.0


def engine(adapt: float) -> Engine:
    settings = dataclasses.replace(ServeSettings(), adapt=adapt, estimate_tempo=False, bpm=BPM)
    return Engine(random_step_model(TOK, seed=3), settings, seed=0)


def tables(memory: SessionMemory) -> dict:
    return {(t, ctx): counts.copy() for t, table in memory._counts.items() for ctx, counts in table.items()}


def test_the_copy_learns_the_call_and_the_memory_is_untouched():
    rows = session_rows(TOK, licks(4, "wholetone", seed=2))
    memory = SessionMemory(TOK, adapt=1.0)
    for phrase in rows[:3]:
        for row in phrase:
            memory.learn(row, 0.0)
    before, events = tables(memory), memory.events
    fork = memory.with_call(rows[3], 1.0)
    assert fork.events == events + len(rows[3]) and memory.events == events
    after = tables(memory)
    assert after.keys() == before.keys() and all(np.array_equal(after[k], before[k]) for k in before)
    assert tables(fork) != before  # (the copy's counts moved: the call is in them)
    assert any(not np.array_equal(tables(fork).get(k, 0), v) for k, v in before.items())


def test_the_first_answer_reads_its_call():
    # Nothing learned before the first call: at adapt 1 its answer still reads the call itself
    call = licks(1, "wholetone", seed=5)
    answers = {adapt: play_calls(engine(adapt), call, BPM, 1)[0][0]["pitch"].tolist() for adapt in (0.0, 1.0)}
    assert answers[1.0] != answers[0.0]


def test_calls_are_learned_once_each():
    calls = licks(3, "wholetone", seed=7)
    e = engine(1.0)
    play_calls(e, calls, BPM, 1)
    assert e.memory.events == sum(len(c) for c in calls) and not e.memory.pending
