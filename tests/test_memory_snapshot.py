"""One answer reads the session memory as it was when the answer was prepared: what the memory
learns while the answer is being sampled (the call just answered, taken a unit at a time in the
think slices) waits for the next answer. Otherwise how often the loop was woken decided which
notes an answer played (``improv demo`` in real time played one more note than ``--fast``).
Engines run in simulated time with a tiny untrained model; two drivers slice the think time
differently."""

from __future__ import annotations

import dataclasses

import numpy as np

from support.fakes import off, on

from improv.evaluation.answers import call_script
from improv.evaluation.licks import licks
from improv.model.step_model import random_step_model
from improv.music.tokenizer import Tokenizer
from improv.realtime.engine import Engine
from improv.settings.serve_section import ServeSettings

TOK = Tokenizer()
BPM = 100.0


def engine() -> Engine:
    settings = dataclasses.replace(ServeSettings(), adapt=1.0, estimate_tempo=False, bpm=BPM)
    return Engine(random_step_model(TOK, seed=3), settings, seed=0)


def session_script(calls, gap_s: float = 9.0) -> list:
    """Every call, one after another ``gap_s`` apart (room for its answer)."""
    script = []
    for k, call in enumerate(calls):
        script += [(t + k * gap_s, m) for t, m in call_script(call, BPM, 1)]
    return script


def drive(e: Engine, script, until: float, tick: float | None, units: int) -> list[tuple[int, int]]:
    """The serve loop's turns: input delivered, ``due`` at every deadline, ``think`` in slices of
    ``units``. ``tick``: the loop also wakes every ``tick`` seconds (a think slice each time), as a
    busy real loop does; None: it thinks all it wants at each wakeup (``--fast``). Returns the
    notes sent on improv's channel, (pitch, velocity), in order."""
    out, now, i = [], 0.0, 0
    for _ in range(200_000):
        times = [script[i][0]] if i < len(script) else []
        wake = e.next_wakeup()
        if wake is not None:
            times.append(max(wake, now))
        if tick is not None and e.wants_think(now):
            times.append(now + tick)
        if not times or min(times) > until:
            break
        now = max(now, min(times))
        while i < len(script) and script[i][0] <= now:
            e.on_message(script[i][1], now)
            i += 1
        out += e.due(now)
        if tick is None:
            while e.wants_think(now):
                e.think(now, units)
        elif e.wants_think(now):
            e.think(now, units)
        out += e.due(now)
    ch = e.settings.channel - 1
    return [(m.note, m.velocity) for _, m in out if m.type == "note_on" and m.velocity > 0 and m.channel == ch]


def test_an_answer_plays_the_same_notes_however_the_think_time_is_sliced():
    calls = licks(5, "wholetone", seed=1)
    script = session_script(calls)
    until = script[-1][0] + 9.0
    fast = drive(engine(), script, until, None, 1000)
    assert len(fast) > 20
    for tick, units in ((0.002, 1), (0.2, 1), (0.5, 1)):  # (0.2, 1), (0.5, 1) differed before
        assert drive(engine(), script, until, tick, units) == fast, (tick, units)


def test_a_speculation_the_performer_played_past_does_not_hold_learning_back():
    # The performer pauses mid-call (improv starts preparing its answer), then plays on: that
    # answer will never play and holds nothing back, so what was heard is learned during the call,
    # not all at once in the next preparation's think unit.
    e = engine()
    calls = licks(2, "wholetone", seed=1)
    first = session_script(calls[:1])
    drive(e, first, first[-1][0] + 9.0, None, 1000)
    start = first[-1][0] + 9.0
    notes = [60, 62, 64, 66, 68, 66, 64, 62]
    script = []
    for k, p in enumerate(notes):
        t = start + k * 0.3 + (0.4 if k >= 4 else 0.0)  # a pause after the fourth note
        script += [(t, on(p)), (t + 0.25, off(p))]
    pause = start + 3 * 0.3 + 0.25 + 0.3  # inside the pause: the answer is being prepared
    drive(e, script[:8], pause, 0.05, 1)  # a few think units: the speculation is under way
    assert e.answer is not None and e.answer.sampling.memory is not None and not e.answer.sampling.finished
    e.memory.hear([np.array([70, 6, 6, 4], np.uint8)] * 3, pause)  # heard (as a call's end hands it over)
    assert not e._may_learn()  # the speculation reads the memory: it waits
    t, m = script[8]
    e.on_message(m, t)  # the performer plays on: that speculation is dropped, learning goes on
    assert e.answer is None and len(e.memory.pending) == 3
    assert e._may_learn()
