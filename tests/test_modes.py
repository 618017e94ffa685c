"""Play along (issue 20): modes switched mid-set, loop and mutate, solo yielding, accompaniment
decided ahead on the beat. In simulated time with the predictable LadderModel."""

from __future__ import annotations

import dataclasses

import pytest
from support.fakes import LadderModel, cc, off, on, phrase, simulate, unclosed

from improv.realtime.accompanist import consonant
from improv.realtime.engine import Engine
from improv.settings.serve_section import ServeSettings

BEAT = 0.6  # 100 bpm


def engine(**kw) -> Engine:
    return Engine(LadderModel(), dataclasses.replace(ServeSettings(), **kw), seed=3)


def ons(out, after=-1.0):
    return [(round(t, 6), m.note) for t, m in out if m.type == "note_on" and m.velocity > 0 and t > after]


def melody(pitches, start=0.0, beat=BEAT):
    """One note per beat, held 90% of it."""
    return phrase(pitches, start=start, step=beat, length=0.9 * beat)


# ---- switching ---------------------------------------------------------------------------------


@pytest.mark.parametrize("to", ["accompany", "loop", "solo", "answer"])
def test_mode_switch_mid_phrase_leaves_no_note_hanging(to):
    e = engine(mode="accompany" if to != "accompany" else "solo")
    script = melody([60, 64, 67, 72, 71, 67, 65, 64])
    script.append((2.1, cc(85, {"answer": 0, "accompany": 40, "loop": 70, "solo": 127}[to])))  # mid-phrase
    out = simulate(e, script, until=12.0)
    out += e.shutdown(12.0)
    assert e.play_mode == to
    assert ons(out)  # something was played
    assert not unclosed(out)  # every note_on got its note_off


def test_mode_switch_silences_at_once():
    e = engine(mode="accompany")
    script = melody([60, 62, 64, 65, 67, 69, 71, 72])
    script.append((2.15, cc(85, 0)))
    out = simulate(e, script, until=3.0)
    sounding_after = [m for t, m in out if t > 2.15 + 1e-9 and m.type == "note_on" and m.velocity > 0]
    assert not sounding_after  # answer mode: nothing plays under the performer any more
    offs = [t for t, m in out if m.type == "note_off" and abs(t - 2.15) < 1e-9]
    assert offs  # the sounding chord ended at the switch, not at its planned end


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="sing"):
        engine().set_mode("sing", 0.0)


# ---- loop ----------------------------------------------------------------------------------------


def answer_then_loop(mutate: float, until: float = 20.0):
    e = engine(mode="loop", mutate=mutate, bar_beats=4)
    out = simulate(e, phrase([60, 62, 64, 65], step=BEAT, length=0.5), until=until)
    reports = e.take_reports()
    return e, out, reports


def test_loop_repeats_the_answer_bar_aligned():
    e, out, reports = answer_then_loop(0.0)
    assert reports and reports[0].ended == "finished"
    notes = ons(out, after=2.4)
    first = notes[0][0]
    length = e._band.looper.length_beats
    assert length % 4 == 0 and length >= 4  # whole bars
    answer = [n for n in notes if n[0] < first + length * BEAT - 1e-6]
    assert len(answer) >= 2
    repeats = e._band.looper.repeats
    assert repeats >= 2
    for k in range(1, repeats):  # each repeat: the same notes, a whole number of bars later
        shifted = [(round(t + k * length * BEAT, 6), p) for t, p in answer]
        assert all(n in notes for n in shifted), k
    assert not unclosed(out + e.shutdown(20.0))


def test_loop_stops_when_the_performer_plays():
    e = engine(mode="loop")
    script = phrase([60, 62, 64, 65], step=BEAT, length=0.5) + [(9.0, on(70)), (9.3, off(70))]
    out = simulate(e, script, until=9.0 + 1.0)
    assert not [t for t, m in out if m.type == "note_on" and m.velocity > 0 and m.channel == 0 and 9.0 < t < 9.0 + 1.0]
    assert not e._band.looper.next_start


def test_mutate_changes_the_loop_measurably():
    _, same, _ = answer_then_loop(0.0)
    _, mutated, _ = answer_then_loop(0.5)
    def pitches(out):
        return [p for _, p in ons(out, after=2.4)]
    a, b = pitches(same), pitches(mutated)
    assert len(a) == len(b)
    changed = sum(x != y for x, y in zip(a, b)) / len(a)
    assert changed > 0.2
    assert [t for t, _ in ons(same, 2.4)] == [t for t, _ in ons(mutated, 2.4)]  # the rhythm stays


# ---- solo ----------------------------------------------------------------------------------------


def test_solo_plays_alone_yields_within_a_beat_and_resumes():
    e = engine(mode="solo")
    script = phrase([72, 71, 69], start=5.0, step=BEAT, length=0.5)
    out = simulate(e, script, until=12.0)
    notes = ons(out)
    assert any(t < 5.0 for t, _ in notes)  # played on its own before the performer came in
    last_call_off = 5.0 + 2 * BEAT + 0.5
    during = [t for t, _ in notes if 5.0 <= t <= last_call_off]
    assert not during  # silent while the performer plays
    offs_at_entry = [t for t, m in out if m.type == "note_off" and 5.0 <= t <= 5.0 + BEAT]
    sounding_before = [t for t, m in out if m.type == "note_on" and t < 5.0]
    assert sounding_before and (offs_at_entry or not e.sounding)
    assert any(t > last_call_off for t, _ in notes)  # and took up again
    assert not unclosed(out + e.shutdown(12.0))


# ---- accompany -----------------------------------------------------------------------------------

CHORALE = [67, 67, 69, 71, 71, 69, 67, 66, 64, 66, 67, 67]  # a G major line, one note a beat


def test_accompaniment_is_on_the_beat_decided_ahead_and_under_the_melody():
    e = engine(mode="accompany", decide_ms=60.0)
    out = simulate(e, melody(CHORALE, start=1.0), until=1.0 + 20 * BEAT)
    played = list(e._band.played)
    assert len(played) > 20
    for note, decided in played:
        k = (note.onset - 1.0) / BEAT
        assert abs(k - round(k)) < 1e-6  # on the performer's beat
        assert note.onset - decided >= 0.06 - 1e-9  # decided before the beat
        assert note.pitch <= min(CHORALE)  # under the melody
    # never a barge-in: improv plays while the performer holds keys, and every note is closed
    assert any(1.0 < n.onset < 1.0 + len(CHORALE) * BEAT for n, _ in played)
    # keeps time a bar after the melody's last note, then stops
    last_key = 1.0 + (len(CHORALE) - 1) * BEAT + 0.9 * BEAT
    assert max(n.onset for n, _ in played) <= last_key + 4 * BEAT + 1e-6
    assert max(n.onset for n, _ in played) > last_key
    assert not unclosed(out + e.shutdown(30.0))
    assert not e.take_reports()  # after: stop: no answer


def test_a_lost_note_off_does_not_keep_the_accompaniment_going():
    """The melody's last note-off never arrives (a JACK cycle lost, a cable pulled): the key is
    released as stuck (``stuck_note_s``), or at once when the input is known lost, and the band
    keeps time one bar more from then, as after a key-up, instead of playing on for ever."""
    script = melody(CHORALE, start=1.0)
    script = script[:-1]  # the last note_off is lost
    last_on = 1.0 + (len(CHORALE) - 1) * BEAT
    e = engine(mode="accompany", stuck_note_s=2.0)
    simulate(e, script, until=last_on + 20.0)
    played = [n.onset for n, _ in e._band.played]
    assert max(played) <= last_on + 2.0 + 4 * BEAT + 1e-6, max(played)  # released as stuck, then a bar

    e = engine(mode="accompany")  # stuck_note_s 10 s: the input's loss comes first
    lost = last_on + 0.5
    simulate(e, script, until=lost)
    e.input_lost(lost)
    simulate(e, [], until=lost + 20.0, start=lost)
    played = [n.onset for n, _ in e._band.played]
    assert max(played) <= lost + 4 * BEAT + 1e-6, max(played)


def test_a_lost_note_off_stops_the_band_after_hold_bars_not_at_stuck_note_s():
    """Over JACK an xrun can drop the cycle that carried a note-off: the band must not keep time
    until the key is released as stuck (10 s), but stop once the keys held have had nothing else
    played for ``hold_bars`` (2 bars), and a new passage then ends a bar after its last key."""
    script = melody(CHORALE, start=1.0)[:-1]  # the last note_off is lost
    last_on = 1.0 + (len(CHORALE) - 1) * BEAT
    e = engine(mode="accompany")
    assert e.settings.stuck_note_s == 10.0 and e.settings.hold_bars == 2
    simulate(e, script, until=last_on + 8.0)
    played = [n.onset for n, _ in e._band.played]
    assert max(played) <= last_on + 2 * 4 * BEAT + 1e-6, max(played) - last_on  # (before: 7.8 s, to the end of the window)
    again = last_on + 6.0
    simulate(e, melody(CHORALE[:4], start=again), until=again + 20.0, start=last_on + 8.0)
    played = [n.onset for n, _ in e._band.played]
    assert max(played) > again and max(played) <= again + 3 * BEAT + 0.9 * BEAT + 4 * BEAT + 1e-6  # the lost key forgotten: a bar after


def test_a_long_held_note_keeps_the_band_going():
    """A performer holding one note for a bar and a half (a fermata, a tie) is still playing: the
    band keeps the beat under it, as under any other note."""
    long_on = 1.0 + 4 * BEAT
    script = melody(CHORALE[:4], start=1.0) + phrase([72], start=long_on, step=6 * BEAT, length=6 * BEAT - 0.05)
    script += melody(CHORALE[4:8], start=long_on + 6 * BEAT)
    e = engine(mode="accompany")
    simulate(e, sorted(script, key=lambda x: x[0]), until=long_on + 20 * BEAT)
    played = {round((n.onset - 1.0) / BEAT) for n, _ in e._band.played}
    assert set(range(4, 4 + 6 + 4)) <= played, sorted(played)  # every beat under the long note, and after


def harmony(e, script):
    mel = [(t, m.note) for t, m in script if m.type == "note_on"]
    total = good = 0.0
    for note, _ in e._band.played:
        for i, (t, p) in enumerate(mel):
            end = t + 0.9 * BEAT
            overlap = max(0.0, min(end, note.end) - max(t, note.onset))
            total += overlap
            good += overlap * consonant(p, note.pitch)
    return good / total


def test_harmony_beats_the_tonic_baseline_on_a_moving_line():
    script = melody(CHORALE * 2, start=1.0)
    ours = engine(mode="accompany")
    simulate(ours, script, until=30.0)
    base = engine(mode="accompany", accompanist="tonic")
    simulate(base, script, until=30.0)
    assert harmony(ours, script) > harmony(base, script)
    assert harmony(ours, script) > 0.7


def test_accompany_then_answer_after_a_bar():
    e = engine(mode="accompany", after="answer")
    script = melody([60, 62, 64, 65, 67, 65, 64, 62], start=1.0)
    out = simulate(e, script, until=15.0)
    reports = e.take_reports()
    assert reports and reports[0].response_notes > 0
    last_key = 1.0 + 7 * BEAT + 0.9 * BEAT
    band_last = max(n.onset for n, _ in e._band.played)
    assert band_last > last_key  # kept time after the performer stopped ...
    ans_first = min(t for t, m in out if m.type == "note_on" and t > band_last + 1e-6)
    assert ans_first > band_last  # ... and then answered
    assert not unclosed(out + e.shutdown(15.0))


def test_the_page_sets_mode_and_mutate_as_the_knobs_do():
    from improv.monitor.controls import ControlError, control_message
    from improv.realtime.controls import Controls

    s = ServeSettings()
    knobs = Controls(s, 1)
    for i, mode in enumerate(["answer", "accompany", "loop", "solo"]):
        msg = control_message("mode", mode, s, 1)
        assert knobs.control(msg.control, msg.value).value == i
    msg = control_message("mutate", 0.3, s, 1)
    assert knobs.control(msg.control, msg.value).value == pytest.approx(0.3, abs=0.005)
    with pytest.raises(ControlError, match="bad value for mode: 'sing'"):
        control_message("mode", "sing", s, 1)


# ---- MIDI learn ----------------------------------------------------------------------------------


def test_midi_learn_binds_the_next_cc_and_survives_a_restart(tmp_path):
    from improv.session.controls_file import describe_controls, load_controls, save_controls

    s = ServeSettings(controls_file=str(tmp_path / "controls.json"))
    e = Engine(LadderModel(), s)
    e.learn("mutate")
    e.on_message(cc(30, 5), 0.0)  # bound, not acted on
    assert e.mutate == 0.0
    e.on_message(cc(30, 127), 0.1)
    assert e.mutate == 1.0
    e.on_message(cc(30, 64), 0.2)
    save_controls(s, e.controls_saved())
    again = Engine(LadderModel(), s)  # the next start
    again.restore_controls(load_controls(s), 0.0)
    assert again.mutate == pytest.approx(64 / 127)  # the last value came back
    again.on_message(cc(30, 0), 0.0)
    assert again.mutate == 0.0  # and the binding
    assert any(line.startswith("mutate") and "CC 30" in line and "learned" in line for line in describe_controls(s))
    with pytest.raises(ValueError, match="unknown control 'volume'"):
        e.learn("volume")


def test_a_damaged_controls_file_is_one_line(tmp_path):
    from improv.errors import ImprovError
    from improv.session.controls_file import load_controls

    path = tmp_path / "c.json"
    path.write_text('{"bindings": {"mutate": 300}}')
    with pytest.raises(ImprovError, match="mutate = 300"):
        load_controls(ServeSettings(controls_file=str(path)))


def test_the_performers_notes_never_cut_the_accompaniment():
    """Eighth notes over the chords: no barge-in, each chord lasts its beat."""
    e = engine(mode="accompany")
    script = phrase([67, 69, 71, 72, 74, 72, 71, 69, 67, 66, 67, 69, 71, 69, 67, 67], start=1.0, step=BEAT / 2, length=0.25)
    out = simulate(e, script, until=12.0)
    held, lengths = {}, []
    for t, m in out:
        if m.type == "note_on" and m.velocity > 0:
            held[m.note] = t
        elif m.type in ("note_on", "note_off") and m.note in held:
            lengths.append(t - held.pop(m.note))
    assert len(lengths) > 12
    assert min(lengths) >= 0.9 * BEAT


def test_the_pages_learn_button_binds_the_next_cc():
    from improv.monitor.controls import ControlError, control_message

    s = ServeSettings()
    e = Engine(LadderModel(), s)
    e.on_message(control_message("learn", "mode", s, 1), 0.0)
    e.on_message(cc(40, 0), 0.1)  # bound
    e.on_message(cc(40, 127), 0.2)
    assert e.play_mode == "solo"
    assert e.controls_saved()["bindings"] == {"mode": 40}
    with pytest.raises(ControlError, match="bad value for learn: 'volume'"):
        control_message("learn", "volume", s, 1)


def test_panic_in_solo_is_silence_until_the_performer_plays():
    e = engine(mode="solo")
    script = [(3.0, cc(23, 127))] + phrase([60, 62, 64], start=8.0, step=BEAT, length=0.5)
    out = simulate(e, script, until=14.0)
    notes = ons(out)
    assert any(t < 3.0 for t, _ in notes)
    assert not [t for t, _ in notes if 3.0 < t < 8.0]  # silent after the panic ...
    assert any(t > 8.0 + 3 * BEAT for t, _ in notes)  # ... until the performer has played
    assert not unclosed(out + e.shutdown(14.0))


def test_a_voice_stuck_on_one_onset_still_moves_on():
    e = Engine(LadderModel(offset=0), dataclasses.replace(ServeSettings(), mode="solo"), seed=1)
    out = simulate(e, [], until=6.0)
    onsets = sorted({t for t, _ in ons(out)})
    assert len(onsets) >= 4  # not every note at one time, nor a queue that never ends
    assert not unclosed(out + e.shutdown(6.0))


def test_what_the_command_line_asks_for_wins_over_the_last_values():
    s = ServeSettings(mode="accompany")
    e = Engine(LadderModel(), s)
    e.restore_controls({"bindings": {}, "values": {"mode": 120, "mutate": 127}}, 0.0, keep=frozenset({"mode"}))
    assert e.play_mode == "accompany" and e.mutate == 1.0
    assert e.controls_saved()["values"]["mode"] == 120  # kept in the file for next time


# ---- the real serve loop (what simulate cannot show: it always thinks after due) ---------------


@pytest.mark.parametrize("mode", ["solo", "accompany", "loop"])
def test_each_mode_runs_in_the_serve_loop_without_spinning(mode):
    from improv.io.clock import FakeClock
    from improv.io.memory_ports import MemoryOutput, ScriptedInput
    from improv.session.loop import ServeLoop

    clock = FakeClock()
    inport = ScriptedInput(clock)
    for when, msg in melody([60, 62, 64, 65, 67, 65, 64, 62], start=2.0):
        inport.add(when, msg.bytes())
    out = MemoryOutput(clock)
    e = engine(mode=mode)
    ServeLoop(e, inport, out, clock).run(until=12.0)  # a loop that never gets to think stalls FakeClock
    notes = [t for t, m in out.sent if m.type == "note_on" and m.velocity > 0]
    assert len(notes) > 4
    if mode != "loop":
        assert any(t < 2.0 + 8 * BEAT for t in notes)  # solo before the performer, accompaniment under them
    assert not unclosed(out.sent)


def test_accompany_follows_the_tempo_the_performer_plays_not_serve_bpm():
    """A melody at 72 bpm, serve.bpm left at 100: once a few notes give the pulse, the chords fall
    on the performer's beats (with serve.bpm's grid they drift a beat off within a bar)."""
    beat = 60 / 72
    e = engine(mode="accompany", decide_ms=60.0)
    simulate(e, melody(CHORALE, start=1.0, beat=beat), until=1.0 + 20 * beat)
    later = [n.onset for n, _ in e._band.played if n.onset > 1.0 + 6 * beat]
    assert len(later) >= 6
    off_beat = [abs((t - 1.0) / beat - round((t - 1.0) / beat)) * beat for t in later]
    assert max(off_beat) < 0.03, off_beat


def test_accompany_keeps_its_level_and_phase_when_the_estimate_flips_an_octave():
    """Plain eighths fit 100 and 200 bpm alike, and note by note the estimate may flip between
    them: the band keeps the beat it has (level and phase), only its period follows."""
    from types import SimpleNamespace

    from improv.music.pulse import Pulse

    e = engine(mode="accompany")
    call = SimpleNamespace(note_count=4)
    e._listener.call = call
    answers = iter([Pulse(bpm=100.0, origin=1.0), Pulse(bpm=201.0, origin=2.35), Pulse(bpm=99.0, origin=2.9)])
    e._planner.tempo = SimpleNamespace(hear=lambda c, now: next(answers))
    assert e._heard_grid(1.5) == (1.0, pytest.approx(0.6))
    call.note_count = 5
    origin, beat = e._heard_grid(2.4)
    assert origin == pytest.approx(2.2) and beat == pytest.approx(2 * 60 / 201)  # still 100's beats, from 1.0
    call.note_count = 6
    origin, beat = e._heard_grid(3.0)
    assert beat == pytest.approx(60 / 99) and abs((origin - 2.2) / 0.6 - round((origin - 2.2) / 0.6)) < 0.05
