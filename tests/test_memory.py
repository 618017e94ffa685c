"""The session memory (realtime/memory.py): it learns the performer's idiom during the set, the
answers take it up at serve.adapt, forget takes it away, it is kept in a file, and junk, time and
a long set cannot make it take over. Engines run in simulated time with a tiny untrained model."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
from support.fakes import cc

from improv.evaluation.learning import idiom_overlaps, play_calls, play_held, session_rows
from improv.evaluation.licks import WHOLE_TONE, licks
from improv.evaluation.metrics import collapse_rate
from improv.model.step_model import random_step_model
from improv.monitor.controls import available, control_message
from improv.music.notes import Note, note_array
from improv.music.tokenizer import N_PITCH, OFFSET, PITCH, Tokenizer
from improv.realtime.controls import Controls
from improv.realtime.engine import Engine
from improv.realtime.memory import RUN_KEEP, SessionMemory
from improv.realtime.memory_file import MemoryFileError, load_memory_bytes, memory_bytes
from improv.settings.sections import TokenizerSettings
from improv.settings.serve_section import ServeSettings

TOK = Tokenizer()
BPM = 100.0


def wholetone_rows(count: int = 10, seed: int = 0) -> list[np.ndarray]:
    return session_rows(TOK, licks(count, "wholetone", seed))


def learned(rows, memory: SessionMemory | None = None, now: float = 0.0) -> SessionMemory:
    memory = memory or SessionMemory(TOK, adapt=1.0)
    for phrase in rows:
        for row in phrase:
            memory.learn(row, now)
    return memory


def wholetone_mass(memory: SessionMemory, before_pitch: int = 62, now: float = 0.0) -> float:
    cursor = memory.cursor([np.array([before_pitch, 6, 6, 4], np.uint8)], now)
    assert cursor is not None
    p = np.exp(cursor.mix(PITCH, np.array([0, 6, 0, 0], np.uint8), np.zeros(N_PITCH)))
    return float(p[:128][np.isin(np.arange(128) % 12, WHOLE_TONE)].sum())


# ---- the memory alone --------------------------------------------------------------------------


def test_it_learns_a_whole_tone_performer():
    memory = learned(wholetone_rows())
    assert memory.share(0.0) > 0.8
    assert wholetone_mass(memory) > 0.8  # a flat voice (zero logits) has half its mass on whole-tone keys
    assert memory.cursor([], 0.0) is not None


def test_the_memory_keeps_to_the_register_the_performer_plays():
    # octave leaps up and down inside 60..76: an interval table alone (blind to register) would
    # send the answer an octave past the top (Final Fantasy answers reached 100 from a call's 82)
    leaps = [note_array([Note(p, 0.5 * k, 0.5, 80) for k, p in enumerate(line)]) for line in ([60, 72, 62, 74, 64, 76, 64, 76, 62, 74],) * 6]
    memory = learned(session_rows(TOK, leaps))
    cursor = memory.cursor(session_rows(TOK, leaps)[0][4:6], 0.0)  # after 64 76 (a leap up): +12 or -12 next
    assert cursor is not None
    p = memory.probs(PITCH, cursor.history, np.array([0, 6, 0, 0], np.uint8), cursor.scale)
    assert p[88] < 0.02 and p[77:].sum() < 0.05  # not an octave past the top
    assert p[64] > 0.3  # the leap down, inside the register, is what it expects


def test_adapt_zero_or_nothing_learned_leaves_the_voice_alone():
    assert SessionMemory(TOK, adapt=1.0).cursor([], 0.0) is None
    memory = learned(wholetone_rows())
    memory.adapt = 0.0
    assert memory.cursor([], 0.0) is None


def test_a_hammered_key_is_no_idiom():
    memory = SessionMemory(TOK, adapt=1.0)
    for k in range(500):
        memory.learn(np.array([60, 3, 3, 2 + k % 3], np.uint8), k * 0.1)
    assert memory.events == RUN_KEEP
    assert memory.share(50.0) == 0.0


def test_memory_stays_bounded_and_forgets_its_oldest_exactly():
    rows = wholetone_rows(40)
    small = learned(rows, SessionMemory(TOK, adapt=1.0, max_events=50))
    assert small.events == 50
    assert small.total == pytest.approx(50.0)
    contexts = sum(len(t) for t in small._counts.values())
    assert contexts <= 50 * 14
    for table in small._counts.values():  # every count is what the last 50 events put there
        for counts in table.values():
            assert counts.min() >= -1e-9 and counts.sum() > 0


def test_forget_after_fades_what_was_played():
    memory = learned(wholetone_rows(), SessionMemory(TOK, adapt=1.0, forget_after=60.0))
    fresh = memory.share(0.0)
    assert memory.scale(60.0) == pytest.approx(0.1)
    assert memory.share(120.0) < fresh / 3
    assert memory.share(1200.0) < 0.01


def test_forget_forgets_everything():
    memory = learned(wholetone_rows())
    memory.forget()
    assert memory.events == 0 and memory.share(0.0) == 0.0 and memory.cursor([], 0.0) is None


def test_a_saved_memory_loads_as_it_was():
    memory = learned(wholetone_rows())
    again = SessionMemory(TOK, adapt=1.0)
    load_memory_bytes(again, memory_bytes(memory, 0.0))
    assert again.events == memory.events
    assert again.share(5.0) == pytest.approx(memory.share(0.0))
    assert wholetone_mass(again) == pytest.approx(wholetone_mass(memory))


def test_a_faded_memory_loads_as_faded_as_it_was_saved():
    # with forget_after, what was played long before the save counts less at the next start too
    memory = SessionMemory(TOK, adapt=1.0, forget_after=60.0)
    learned(wholetone_rows(6), memory, now=0.0)
    learned(session_rows(TOK, licks(6, "blues", 1)), memory, now=120.0)  # the recent idiom
    again = SessionMemory(TOK, adapt=1.0, forget_after=60.0)
    load_memory_bytes(again, memory_bytes(memory, 120.0))
    assert again.share(0.0) == pytest.approx(memory.share(120.0))
    assert wholetone_mass(again, now=0.0) == pytest.approx(wholetone_mass(memory, now=120.0), abs=1e-6)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: b"not a memory", "is not a session memory improv wrote"),
        (lambda data: data[: len(data) // 2], "is not a session memory improv wrote"),
        ("vocabulary", "made for another vocabulary"),
        ("rows", "out of range"),
    ],
)
def test_a_bad_memory_file_is_one_clear_line(damage, message):
    memory = learned(wholetone_rows(2))
    reader = SessionMemory(TOK, adapt=1.0)
    if damage == "vocabulary":
        data = memory_bytes(memory, 0.0)
        reader = SessionMemory(Tokenizer(TokenizerSettings(velocity_bins=16)), adapt=1.0)
    elif damage == "rows":
        memory._events[0][0][PITCH] = 200
        data = memory_bytes(memory, 0.0)
    else:
        data = damage(memory_bytes(memory, 0.0))
    with pytest.raises(MemoryFileError, match=message) as got:
        load_memory_bytes(reader, data, "set.memory")
    assert "\n" not in str(got.value) and "set.memory" in str(got.value)


# ---- in the engine -----------------------------------------------------------------------------


def engine(adapt: float, **kw) -> Engine:
    settings = dataclasses.replace(ServeSettings(), adapt=adapt, estimate_tempo=False, bpm=BPM, **kw)
    return Engine(random_step_model(TOK, seed=3), settings, seed=0)


def wholetone_share(answers) -> float:
    pitches = np.concatenate([a["pitch"] for a in answers]).astype(int)
    return float(np.isin(pitches % 12, WHOLE_TONE).mean())


def test_answers_take_up_the_performers_scale_at_adapt_one():
    calls = licks(16, "wholetone", seed=2)
    got = {}
    for adapt in (0.0, 1.0):
        # The key and motif rules off, so the memory's uptake is what is measured (with them on, the
        # call's whole-tone pitch classes already made 0.75 of adapt 0's notes whole-tone once the
        # answers ended at their length, and the margin was 0.06), as in test_memory_jack.
        e = engine(adapt, rule_key=0.0, rule_motif=0.0)
        answers, _ = play_calls(e, calls, BPM, 1)
        got[adapt] = answers[10:]
        assert e.memory.events > 80  # it learns at adapt 0 too: the knob may go up any time
    assert wholetone_share(got[1.0]) > wholetone_share(got[0.0]) + 0.15
    assert idiom_overlaps(got[1.0], calls)["interval"] > idiom_overlaps(got[0.0], calls)["interval"]
    # the quality bar holds after learning
    assert collapse_rate([session_rows(TOK, [a])[0] for a in got[1.0] if len(a)]) < 0.02


def test_a_held_memory_answers_as_the_first_calls_left_it():
    # bench_learn's held sets: "improv after N calls", however many answers are asked of it
    calls = licks(4, "wholetone", seed=6)
    e = engine(1.0)
    answers = play_held(e, calls, 2, BPM, 1)
    assert len(answers) == 4 and all(len(a) for a in answers)
    assert e.memory.events == sum(len(c) for c in calls[:2])  # the last two calls were answered, not learned
    assert not e.memory.pending


def test_forget_brings_the_voice_back():
    calls = licks(11, "wholetone", seed=4)
    e = engine(1.0)
    _, now = play_calls(e, calls[:10], BPM, 1)
    kept, forgot, alone = e, copy.deepcopy(e), copy.deepcopy(e)
    forgot.on_message(cc(forgot.settings.cc_forget, 127), now + 0.5)
    alone.memory.adapt = 0.0
    assert forgot.memory.events == 0
    answers = {}
    for name, which in (("kept", kept), ("forgot", forgot), ("alone", alone)):
        answers[name], _ = play_calls(which, calls[10:], BPM, 1, start=now + 1.0)
    pitches = {k: v[0]["pitch"].tolist() for k, v in answers.items()}
    assert pitches["forgot"] == pitches["alone"]  # forgotten: the voice's own answer, note for note
    assert pitches["kept"] != pitches["alone"]  # while remembered, the memory had its say


def test_a_junk_session_does_not_take_over_later_answers():
    key = 66
    junk = np.zeros(100, dtype=[("pitch", np.uint8), ("velocity", np.uint8), ("start", np.float64), ("duration", np.float64)])
    junk["pitch"], junk["velocity"], junk["start"], junk["duration"] = key, 90, np.arange(100) * 0.25, 0.2
    later = licks(6, "wholetone", seed=5)
    share, again = {}, {}
    for adapt in (0.0, 1.0):
        e = engine(adapt)
        _, now = play_calls(e, [junk] * 5, BPM, 1)  # one key struck 500 times
        answers, _ = play_calls(e, later, BPM, 1, start=now)
        pitches = np.concatenate([a["pitch"] for a in answers])
        share[adapt] = float((pitches == key).mean())
        # what a memory of junk would teach: the same key again and again (0.23 of the notes when
        # it was learned, 0.07 for the voice alone)
        again[adapt] = float(np.mean(np.concatenate([np.diff(a["pitch"].astype(int)) == 0 for a in answers if len(a) > 1])))
    # Against adapt 0 with a margin that a learned junk (0.23 repeats) cannot meet: a line's answer
    # takes up the call's tail motif, and these licks' tails hold neither the junk key nor a
    # repeated note, so adapt 0 may play none of either while adapt 1 keeps the voice's own
    # 0.07 (the key, F#4, is one of the whole-tone scale's six notes).
    assert share[1.0] <= share[0.0] + 0.1
    assert again[1.0] <= again[0.0] + 0.1


def test_adapt_and_forget_controls():
    s = ServeSettings()
    controls = Controls(s, 1)
    assert controls.control(s.cc_adapt, 127).kind == "adapt"
    assert controls.control(s.cc_adapt, 0).value == 0.0
    assert controls.control(s.cc_forget, 127).kind == "forget"
    assert controls.control(s.cc_forget, 0) is None
    e = engine(0.5)
    e.on_message(control_message("adapt", 0.25, s, 1), 0.0)  # the page's control, as the knob sends it
    assert e.memory.adapt == pytest.approx(32 / 127)
    assert available(s, 1)["adapt"] and available(s, 1)["forget"]
    assert not available(dataclasses.replace(s, cc_adapt=-1, cc_forget=-1), 1)["forget"]
    with pytest.raises(Exception, match="same controller"):
        from improv.settings.load import check_section

        check_section("serve", dataclasses.replace(s, cc_forget=s.cc_panic))


def test_learning_waits_for_think_time():
    e = engine(1.0)
    calls = licks(1, "wholetone", seed=6)
    play_calls(e, calls, BPM, 1)
    assert e.memory.events == len(calls[0]) and not e.memory.pending
    e.memory.hear([np.array([60, OFFSET, 6, 4], np.uint8)], 0.0)
    assert e.wants_think(1e6)  # heard, learned in the next think slice


def test_serve_keeps_the_memory_in_a_file(tmp_path):
    from improv.session.serve import load_memory, save_memory

    said: list[str] = []
    path = tmp_path / "set.memory"
    fresh = SessionMemory(TOK, adapt=1.0)
    load_memory(fresh, str(path), said.append)  # none yet: it starts empty, and says so
    assert fresh.events == 0 and "starts empty" in said[-1]
    assert save_memory(learned(wholetone_rows()), str(path), 0.0, said.append)
    load_memory(fresh, str(path), said.append)
    assert fresh.events == learned(wholetone_rows()).events and "events remembered" in said[-1]
    path.write_bytes(b"PK\x03\x04 but no zip")
    with pytest.raises(MemoryFileError, match="set.memory is not a session memory"):
        load_memory(fresh, str(path), said.append)
    (tmp_path / "folder").mkdir()
    with pytest.raises(MemoryFileError, match="cannot read the session memory"):
        load_memory(fresh, str(tmp_path / "folder"), said.append)
