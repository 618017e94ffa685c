"""How the performer ends a phrase is part of their idiom: the session memory keeps the length of
each call's last note, and an answer looking for its ending (the cadence's part of it) leans to
those lengths. Licks that end on a half note teach half-note endings; the notes before them do
not change; a saved memory keeps its endings."""

from __future__ import annotations

import numpy as np

from improv.evaluation.learning import session_rows
from improv.evaluation.licks import licks
from improv.music.tokenizer import DURATION, Tokenizer
from improv.realtime.memory import SessionMemory
from improv.realtime.memory_file import load_memory_bytes, memory_bytes

TOK = Tokenizer()
HALF = int(np.argmin(np.abs(TOK.time_values - 2.0)))  # the licks' last note: two beats
ROW = np.array([60, 6, 0, 0], np.uint8)  # an eighth after the last onset, its duration to draw


def heard(memory: SessionMemory) -> SessionMemory:
    for phrase in session_rows(TOK, licks(8, "wholetone", seed=4)):
        memory.hear(list(phrase), 0.0)  # as the engine hands over each call
    memory.catch_up()
    return memory


def half_note(memory: SessionMemory, closing: bool) -> float:
    cursor = memory.cursor(session_rows(TOK, licks(1, "wholetone", seed=9))[0][:3], 0.0)
    assert cursor is not None
    p = np.exp(cursor.mix(DURATION, ROW, np.zeros(TOK.sizes[DURATION]), closing))
    return float(p[HALF] / p.sum())


def test_an_answer_near_its_end_leans_to_the_performers_phrase_endings():
    memory = heard(SessionMemory(TOK, adapt=1.0))
    during, ending = half_note(memory, False), half_note(memory, True)
    assert ending > during + 0.1  # the half note the licks end on
    assert during < 0.15  # inside a phrase, the licks' eighths and triplets stay what it expects


def test_a_saved_memory_keeps_its_phrase_endings():
    memory = heard(SessionMemory(TOK, adapt=1.0))
    again = SessionMemory(TOK, adapt=1.0)
    load_memory_bytes(again, memory_bytes(memory, 0.0))
    assert half_note(again, True) == half_note(memory, True)
