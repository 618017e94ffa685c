"""The key rule's key moves to the performer's scale with the session memory's say
(realtime/idiom_key.py): a whole-tone or blues session changes the key the rule keeps, in
proportion to adapt; nothing learned, adapt 0 or a hammered key leave the estimated key alone."""

from __future__ import annotations

import dataclasses

import numpy as np

from improv.evaluation.learning import play_calls, session_rows
from improv.evaluation.licks import BLUES, WHOLE_TONE, licks
from improv.model.step_model import random_step_model
from improv.music.keys import scale_pitch_classes
from improv.music.tokenizer import Tokenizer
from improv.realtime.engine import Engine
from improv.realtime.idiom_key import LEAVE_AT, performer_key
from improv.realtime.memory import SessionMemory
from improv.settings.serve_section import ServeSettings

TOK = Tokenizer()


def pcs(*classes: int) -> np.ndarray:
    out = np.zeros(12, dtype=bool)
    out[list(classes)] = True
    return out


C_MAJOR = pcs(*scale_pitch_classes(0, False))


def memory_of(scale: str, calls: int = 10, adapt: float = 1.0, seed: int = 0) -> SessionMemory:
    memory = SessionMemory(TOK, adapt=adapt)
    for phrase in session_rows(TOK, licks(calls, scale, seed)):
        for row in phrase:
            memory.learn(row, 0.0)
    return memory


def test_a_whole_tone_session_makes_the_key_whole_tone_at_adapt_one():
    key = performer_key(C_MAJOR, np.array([60, 62]), memory_of("wholetone"), 0.0)
    assert np.flatnonzero(key).tolist() == list(WHOLE_TONE)  # F G A B left, F# G# A# joined


def test_a_blues_session_brings_its_flat_fifth_and_sevenths():
    key = performer_key(C_MAJOR, np.array([60]), memory_of("blues", calls=15), 0.0)
    assert np.flatnonzero(key).tolist() == list(BLUES)


def test_at_half_adapt_the_performers_notes_join_but_the_key_keeps_its_own():
    key = performer_key(C_MAJOR, np.array([60]), memory_of("wholetone", adapt=0.5), 0.0)
    assert (key & C_MAJOR).tolist() == C_MAJOR.tolist()
    assert key[[6, 8, 10]].all()


def test_nothing_learned_adapt_zero_or_a_hammered_key_leave_the_key_alone():
    assert (performer_key(C_MAJOR, np.array([60]), SessionMemory(TOK, adapt=1.0), 0.0) == C_MAJOR).all()
    assert (performer_key(C_MAJOR, np.array([60]), memory_of("wholetone", adapt=0.0), 0.0) == C_MAJOR).all()
    hammered = SessionMemory(TOK, adapt=1.0)
    for k in range(300):
        hammered.learn(np.array([66, 3, 3, 2], np.uint8), k * 0.1)
    assert (performer_key(C_MAJOR, np.array([60]), hammered, 30.0) == C_MAJOR).all()


def test_the_calls_own_notes_stay_in_the_key():
    key = performer_key(C_MAJOR, np.array([65, 67]), memory_of("wholetone"), 0.0)  # F and G, out of whole-tone
    assert key[[5, 7]].all()


def test_a_performer_who_moves_on_brings_the_key_with_them():
    memory = memory_of("wholetone", calls=20)
    moved = [(np.array(licks(1, "wholetone", 9)[0]["pitch"], dtype=int) + 1)]  # the other whole-tone scale
    for _ in range(6):
        for p in moved[0]:
            memory.learn(np.array([p, 6, 6, 4], np.uint8), 0.0)
    key = performer_key(C_MAJOR, np.array([61]), memory, 0.0)
    assert key[[1, 3]].all() and not key[[2, 4]].any()  # C#, D# in; D, E (the old scale) out


def test_answers_keep_the_performers_scale_with_the_default_rules():
    """In the engine, every default rule on: after ten whole-tone calls the tiny voice (which gives
    every key less than the key rule's floor) answers in the whole-tone scale alone at adapt 1; the
    estimated major or minor key let a tenth or more of its notes out (0.84 - 0.90 before)."""
    calls = licks(16, "wholetone", seed=2)
    shares = {}
    for adapt in (0.0, 1.0):
        e = Engine(random_step_model(TOK, seed=3), dataclasses.replace(ServeSettings(), adapt=adapt, estimate_tempo=False, bpm=100.0), seed=0)
        answers, _ = play_calls(e, calls, 100.0, 1)
        pitches = np.concatenate([a["pitch"] for a in answers[10:]]).astype(int)
        shares[adapt] = float(np.isin(pitches % 12, WHOLE_TONE).mean())
    assert shares[1.0] >= 0.97, shares
    assert shares[0.0] <= 0.8, shares


def test_two_licks_are_no_scale_yet():
    """Two licks leave out scale tones by chance: nothing leaves the key on so little."""
    memory = memory_of("wholetone", calls=2)
    assert memory.share(0.0) > LEAVE_AT  # the memory has its say on the pitches already
    assert (performer_key(C_MAJOR, np.array([60]), memory, 0.0) & C_MAJOR).tolist() == C_MAJOR.tolist()
