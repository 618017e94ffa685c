"""An idiom learned over the set colours the whole answer: as the session memory gains its say,
the voice's own notes outside the performer's scale lose weight (``memory_cursor.OUTSIDE_CUT``),
but never the call's own pitch classes, and not when the call has left the performer's scale (a
new key: ``realtime.call_fit``)."""

from __future__ import annotations

import numpy as np

from improv.evaluation.learning import session_rows
from improv.evaluation.licks import WHOLE_TONE, licks
from improv.music.notes import Note, note_array
from improv.music.tokenizer import N_PITCH, PITCH, Tokenizer
from improv.realtime.memory import SessionMemory
from improv.realtime.memory_cursor import MemoryCursor

TOK = Tokenizer()
ROW = np.array([0, 6, 0, 0], np.uint8)  # an onset after the last, its pitch to draw


def wholetone_memory() -> SessionMemory:
    memory = SessionMemory(TOK, adapt=1.0)
    for phrase in session_rows(TOK, licks(10, "wholetone", seed=3)):
        for row in phrase:
            memory.learn(row, 0.0)
    return memory


def diatonic_voice() -> np.ndarray:
    """A voice that loves C major's F, G, A and B around middle C (its own favourites)."""
    logits = np.full(N_PITCH, -4.0)
    logits[60:72] = 0.0
    logits[[65, 67, 69, 71]] = 2.0
    return logits


def outside_mass(cursor: MemoryCursor, pcs=WHOLE_TONE) -> float:
    p = np.exp(cursor.mix(PITCH, ROW, diatonic_voice()))[:128]
    return float(p[~np.isin(np.arange(128) % 12, pcs)].sum())


def call(pitches) -> list[np.ndarray]:
    return list(session_rows(TOK, [note_array([Note(p, 0.5 * k, 0.5, 80) for k, p in enumerate(pitches)])])[0])


def uncut(cursor: MemoryCursor) -> MemoryCursor:
    return MemoryCursor(cursor.memory, cursor.lam, cursor.scale, cursor._rows, cursor.call_pc, cursor.agree)


def test_the_voices_notes_outside_the_performers_scale_lose_weight():
    memory = wholetone_memory()
    cursor = memory.cursor(call([60, 62, 64, 66, 68, 66, 64]), 0.0)
    assert cursor is not None and cursor.lam > 0.8
    before, after = outside_mass(uncut(cursor)), outside_mass(cursor)
    assert before > 0.15  # the voice's F, G, A, B still had their share of the answer
    assert after < 0.8 * before  # their odds against the notes inside: times 1 - the pitch head's share (0.36 here)


def test_the_calls_own_pitch_classes_are_never_cut():
    memory = wholetone_memory()
    cursor = memory.cursor(call([60, 62, 64, 65, 67, 66, 64]), 0.0)  # a whole-tone call with F and G in it
    assert cursor is not None and cursor.agree > 0
    p = np.exp(cursor.mix(PITCH, ROW, diatonic_voice()))[:128]
    q = np.exp(uncut(cursor).mix(PITCH, ROW, diatonic_voice()))[:128]
    assert p[65] >= q[65] and p[67] >= q[67]  # F and G: the call played them
    assert p[69] < 0.85 * q[69]  # A: neither the performer nor the call


def test_a_call_in_a_new_key_keeps_the_voices_notes():
    memory = wholetone_memory()
    cursor = memory.cursor(call([67, 69, 71, 72, 74, 72, 71, 69, 67]), 0.0)  # G major: it has left the scale
    assert cursor is not None and cursor.agree == 0.0
    assert outside_mass(cursor) == outside_mass(uncut(cursor))
