"""The performer's pulse (music/pulse.py, realtime/tempo.py): tempo, phase, metre and swing from
jittered performed phrases, and the engine answering on the performer's grid in simulated time."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from improv.errors import ImprovError
from improv.music.metre import meter
from improv.music.pulse import Pulse, snap, swing_position, swing_ratio, unswing
from improv.music.pulse_track import track
from improv.realtime.engine import Engine
from improv.settings.load import check_section, load_settings
from improv.settings.serve_section import ServeSettings
from support.fakes import LadderModel, off, on, simulate

# Rhythms in beats, as people play them: plain quarters, eighths and quarters, a dotted figure
# with a long note, a folk-like line with sixteenths.
RHYTHMS = {
    "quarters": [0, 1, 2, 3, 4, 5, 6, 7],
    "eighths and quarters": [0, 0.5, 1, 1.5, 2, 3, 3.5, 4, 5, 6],
    "dotted": [0, 1.5, 2, 3, 4, 5.5, 6, 7, 8],
    "sixteenths": [0, 1, 1.5, 2, 3, 4, 4.5, 5, 5.25, 5.5, 5.75, 6, 8],
}


def played(beats, bpm: float, rng, jitter: float = 0.02, start: float = 10.0, swing: float = 1.0):
    beat = 60 / bpm
    onsets = np.array([start + swing_position(b, swing) * beat for b in beats]) + rng.normal(0, jitter, len(beats))
    durations = np.append(np.diff(onsets), beat) * 0.9
    return onsets, durations


def kind_of_error(heard: float | None, bpm: float) -> str:
    if heard is None:
        return "none"
    r = heard / bpm
    if any(abs(r / x - 1) < 0.04 for x in (1, 2, 0.5)):
        return "ok"
    return "3:2" if any(abs(r / x - 1) < 0.04 for x in (1.5, 2 / 3)) else "other"


@pytest.mark.parametrize("name", sorted(RHYTHMS))
def test_tempo_of_jittered_phrases_from_40_to_220_bpm_is_right_or_an_octave_off(name):
    rng = np.random.default_rng(1)
    errors = []
    for bpm in range(40, 221, 12):
        for _ in range(3):
            onsets, durations = played(RHYTHMS[name], bpm, rng)
            pulse = track(onsets, 100.0, durations=durations)
            kind = kind_of_error(pulse and pulse.bpm, bpm)
            if kind != "ok":
                errors.append((bpm, kind, pulse and round(pulse.bpm, 1)))
    assert len(errors) <= 1 and not any(k == "3:2" for _, k, _ in errors), errors


@pytest.mark.parametrize("bpm", [60, 70, 80])
def test_plain_quarters_are_never_heard_at_three_halves(bpm):
    """The issue's case: quarters at 60/70/80 were heard at 90/105/120."""
    beat = 60 / bpm
    pulse = track([k * beat for k in range(8)], 100.0)
    assert pulse is not None and kind_of_error(pulse.bpm, bpm) == "ok"


def test_the_prior_chooses_the_metrical_level_and_the_phase_is_the_performers():
    rng = np.random.default_rng(2)
    onsets, durations = played(RHYTHMS["quarters"], 60, rng, jitter=0.0, start=3.3)
    assert track(onsets, 60.0, 0.35, durations).bpm == pytest.approx(60, rel=0.01)
    assert track(onsets, 120.0, 0.35, durations).bpm == pytest.approx(120, rel=0.01)
    onsets, durations = played(RHYTHMS["eighths and quarters"], 90, rng)
    pulse = track(onsets, 90.0, 0.35, durations)
    assert pulse.bpm == pytest.approx(90, rel=0.02)
    # the grid extrapolated four beats past the call: within 15 ms of the performer's beat
    beat = 60 / 90
    truth = 10.0 + np.arange(6, 14) * beat
    grid = [pulse.time(round(pulse.position(t))) for t in truth]
    assert np.max(np.abs(np.array(grid) - truth)) < 0.015


def test_no_pulse_from_too_few_onsets():
    assert track([0, 0.5, 1.0], 100.0) is None
    assert track([0, 0.005, 0.01, 0.5, 0.505, 1.0], 100.0) is None  # three chords: three onsets


def test_meter_and_downbeat_from_accents():
    rng = np.random.default_rng(4)
    for bpb, pickup in ((3, 0), (4, 1), (4, 0), (3, 2)):
        beats = [b for b in range(-pickup, 4 * bpb)]
        onsets, durations = played(beats, 100, rng, jitter=0.01)
        velocities = [90 if (b % bpb) == 0 else 60 for b in beats]
        durations = [d * (1.6 if b % bpb == 0 else 1.0) for d, b in zip(durations, beats)]
        pitches = [48 if b % bpb == 0 else 64 for b in beats]
        pulse = meter(track(onsets, 100.0, durations=durations), onsets, durations, velocities, pitches)
        assert pulse.beats_per_bar == bpb
        # the performer's bar lines are at beats 0, bpb, ...: on the pulse's downbeats
        down = pulse.position(onsets[beats.index(bpb)])
        assert round(down - pulse.downbeat) % bpb == 0, (bpb, pickup)


def test_swing_ratio_of_off_beat_eighths():
    rng = np.random.default_rng(5)
    beats = [0, 0.5, 1, 1.5, 2, 2.5, 3, 4, 4.5, 5, 5.5, 6]
    for ratio in (1.0, 1.6, 2.0):
        onsets, durations = played(beats, 120, rng, jitter=0.008, swing=ratio)
        pulse = track(onsets, 120.0, durations=durations)
        assert pulse.bpm == pytest.approx(120, rel=0.03)
        assert swing_ratio(pulse, onsets) == pytest.approx(ratio, abs=0.25)
    straight = [0, 0.5, 0.75, 1, 2, 2.75, 3, 4]  # dotted figures are not swing
    onsets, durations = played(straight, 120, rng, jitter=0.005)
    assert swing_ratio(track(onsets, 120.0, durations=durations), onsets) == 1.0


def test_swing_and_snap_positions():
    assert swing_position(0.5, 2.0) == pytest.approx(2 / 3)
    assert unswing(swing_position(3.5, 1.6), 1.6) == pytest.approx(3.5)
    assert swing_position(2.0, 2.0) == 2.0 and swing_position(2.25, 1.0) == 2.25
    assert snap(1.3) == pytest.approx(4 / 3) and snap(2.26) == pytest.approx(2.25) and snap(2.97) == 3.0
    p = Pulse(bpm=120, origin=1.0, beats_per_bar=3, downbeat=1)
    assert p.next_beat(1.26) == 1 and p.next_downbeat(1.26) == 1 and p.next_downbeat(1.6) == 4


# ---- the engine: answers on the performer's grid, in simulated time ----------------------------


def performed_call(beats, bpm: float, start: float, rng, jitter: float = 0.015, pitches=None):
    beat = 60 / bpm
    script = []
    for k, b in enumerate(beats):
        t = start + b * beat + rng.normal(0, jitter)
        p = (pitches or [60, 62, 64, 65, 67, 69, 71, 72])[k % 8]
        vel = 90 if b % 4 == 0 else 64
        script += [(t, on(p, vel)), (t + 0.8 * beat * min(np.diff(beats + [b + 1])[k], 1), off(p))]
    return script


SETTINGS = ServeSettings(keep_key=False, imitation=0.0, phrase_ending=False, echo_ms=0)


@pytest.mark.parametrize("bpm", [56, 100, 184])
def test_every_answer_onset_is_on_the_performers_grid(bpm):
    """No --bpm: a call of eighths and quarters at ``bpm``; the answer's notes (a model that plays
    an offset of 5/12 beat, off any sixteenth or triplet) land on the performer's sixteenths and
    triplets, the first on a beat."""
    rng = np.random.default_rng(bpm)
    beats = RHYTHMS["eighths and quarters"]
    script = performed_call(beats, bpm, 2.0, rng, jitter=0.005)  # how close under jitter: bench_pulse
    e = Engine(LadderModel(offset=5), SETTINGS, seed=1)
    out = simulate(e, script, until=60)
    (report,) = e.take_reports()
    assert kind_of_error(report.bpm, bpm) == "ok"
    beat = 60 / bpm * (bpm / report.bpm if abs(report.bpm / bpm - 1) > 0.1 else 1)
    times = [t for t, m in out if m.type == "note_on" and m.velocity > 0]
    assert len(times) >= 3
    pos = (np.array(times) - 2.0) / beat
    grid = np.array([min(abs(x - math.floor(x) - g) for g in (0, 0.25, 1 / 3, 0.5, 2 / 3, 0.75, 1)) for x in pos])
    assert np.all(grid * beat < 0.03), grid * beat
    assert abs(pos[0] - round(pos[0])) * beat < 0.03


def test_the_first_answer_note_is_on_the_beat_the_model_means():
    """The drift of the issue: the model's first offset put its own beat a sixteenth off the
    performer's, and the first note was then moved onto a beat, so every later note sat at 0.75 of
    the beat. Now the first offset the model is given lands on a beat of the call's grid: the
    model's beat and the performer's agree, and its later offsets (dotted eighths here) count from it."""
    rng = np.random.default_rng(7)
    script = performed_call([0, 1, 2, 3, 4, 5, 6], 100, 1.0, rng, jitter=0.0)
    e = Engine(LadderModel(offset=9), SETTINGS, seed=1)  # offset class 9 = 0.75 beat
    out = simulate(e, script, until=40)
    times = np.array([t for t, m in out if m.type == "note_on" and m.velocity > 0])
    pos = (times - 1.0) / 0.6
    assert abs(pos[0] - round(pos[0])) < 0.02 and len(times) >= 3
    assert np.allclose(np.diff(pos), 0.75, atol=0.02)
    # What the model was told: the call (beats 0..6) then its first note, a whole number of beats on.
    rows = [r for r in e.window_rows() if r[0] < 128]
    values = e.tokenizer.time_values
    call_end = sum(values[int(r[1])] for r in rows[1:7])
    first = values[int(rows[7][1])]
    assert call_end == pytest.approx(6.0) and abs((call_end + first) - round(call_end + first)) < 1e-6, first


def test_bar_entry_starts_on_the_next_downbeat_and_answers_whole_bars():
    rng = np.random.default_rng(8)
    beats = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]  # two bars and a half of 4/4, accented on the bar
    script = performed_call(beats, 120, 1.0, rng, jitter=0.01, pitches=[48, 64, 67, 64, 50, 65, 69, 65])
    e = Engine(LadderModel(offset=6), dataclasses.replace(SETTINGS, entry="bar"), seed=1)
    out = simulate(e, script, until=40)
    (report,) = e.take_reports()
    assert report.grid == "downbeat"
    times = np.array([t for t, m in out if m.type == "note_on" and m.velocity > 0])
    first = (times[0] - 1.0) / 0.5
    assert abs(first - round(first)) < 0.05 and round(first) % 4 == 0 and round(first) >= 12
    span = (times[-1] - times[0]) / 0.5
    assert span < 12  # whole bars: the answer ends inside its third bar (3 bars = 12 beats)


def test_the_set_tempo_carries_and_a_long_pause_hears_anew():
    """Plain quarters at 60 after a call at 60 stay at 60 (the level of the set), a gradual change
    is followed, and after a long pause a call at another tempo is heard at its own."""
    rng = np.random.default_rng(9)
    e = Engine(LadderModel(offset=12), dataclasses.replace(SETTINGS, bpm=60.0, response_length=4), seed=1)
    script = performed_call([0, 1, 2, 3, 4, 5, 6, 7], 60, 1.0, rng)
    script += performed_call([0, 1, 2, 3, 4, 5, 6, 7], 64, 20.0, rng)
    script += performed_call([0, 0.5, 1, 1.5, 2, 3, 3.5, 4, 5, 6], 150, 60.0, rng)
    simulate(e, script, until=90)
    heard = [r.bpm for r in e.take_reports()]
    assert heard[0] == pytest.approx(60, rel=0.03)
    assert heard[1] == pytest.approx(64, rel=0.03)
    assert kind_of_error(heard[2], 150) == "ok"


def test_output_latency_sends_early():
    rng = np.random.default_rng(10)
    script = performed_call([0, 1, 2, 3, 4, 5], 100, 1.0, rng, jitter=0.0)
    times = {}
    for ms in (0.0, 25.0):
        e = Engine(LadderModel(offset=12), dataclasses.replace(SETTINGS, output_latency_ms=ms), seed=1)
        times[ms] = [t for t, m in simulate(e, script, until=30) if m.type == "note_on" and m.velocity > 0]
    assert np.allclose(np.array(times[0.0]) - np.array(times[25.0]), 0.025)
    s = dataclasses.replace(SETTINGS, output_latency_by_velocity=[[20.0, 60.0], [100.0, 20.0]])
    from improv.realtime.tempo import latency_s

    assert latency_s(s, 60) == pytest.approx(0.040) and latency_s(s, 127) == pytest.approx(0.020)


@pytest.mark.parametrize("key,value", [("swing", 0.5), ("output_latency_ms", -1.0), ("output_latency_by_velocity", [[200.0, 5.0]])])
def test_bad_pulse_settings_are_one_line_errors(key, value):
    with pytest.raises(ImprovError, match=key):
        check_section("serve", dataclasses.replace(ServeSettings(), **{key: value}))


def test_entry_is_beat_or_bar():
    with pytest.raises(ImprovError, match="serve.entry"):
        load_settings(overrides=["serve.entry=downbeat"])
    assert load_settings(overrides=["serve.entry=bar"]).serve.entry == "bar"


def test_calibrate_times_round_trips_and_finds_a_velocity_table():
    from improv.cli.calibrate import round_trips, summary

    now = [0.0]
    pending = []

    def send(msg):  # a loopback whose soft notes come back 12 ms later than loud ones
        if msg.type == "note_on":
            pending.append((now[0] + 0.005 + (0.012 if msg.velocity < 50 else 0.0), msg))

    def arrivals():
        due = [(t, m) for t, m in pending if t <= now[0]]
        for x in due:
            pending.remove(x)
        return due

    def sleep(s):
        now[0] += s

    trips = round_trips(send, arrivals, lambda: now[0], sleep, 12)
    assert len(trips) == 12
    latency, table = summary(trips)
    assert latency == pytest.approx(5.0, abs=0.6)
    assert dict((int(v), e) for v, e in table)[20] == pytest.approx(12.0, abs=0.6)
    assert summary([(64, 0.010), (100, 0.011)]) == (pytest.approx(10.5), [])
    with pytest.raises(ImprovError, match="no note came back"):
        summary([])


def test_the_answer_swings_as_the_call_did_unless_serve_swing_says_otherwise():
    rng = np.random.default_rng(11)
    beat = 0.5
    beats = [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 5]
    script = []
    for k, b in enumerate(beats):
        t = 1.0 + swing_position(b, 2.0) * beat + rng.normal(0, 0.005)
        script += [(t, on(60 + k % 5, 90 if b % 1 == 0 else 70)), (t + 0.12, off(60 + k % 5))]
    fracs = {}
    for swing in (0.0, 1.0):
        e = Engine(LadderModel(offset=6), dataclasses.replace(SETTINGS, swing=swing), seed=1)  # eighths
        times = np.array([t for t, m in simulate(e, script, until=40) if m.type == "note_on" and m.velocity > 0])
        pos = (times - 1.0) / beat
        f = pos - np.floor(pos + 0.1)
        fracs[swing] = float(np.mean(f[(f > 0.3) & (f < 0.9)]))  # where the off-beat eighths fall
    assert fracs[0.0] == pytest.approx(2 / 3, abs=0.04)  # the call's swing, 2:1
    assert fracs[1.0] == pytest.approx(0.5, abs=0.04)


def test_under_midi_clock_the_answer_is_on_the_clocks_sixteenths():
    """The issue's clock case: the answer placed on the DAW's grid, not only its first note."""
    import mido

    beat = 0.6
    script = [(0.0, mido.Message("start"))] + [(k * beat / 24, mido.Message("clock")) for k in range(24 * 40)]
    for k, p in enumerate([60, 62, 64, 65, 67]):
        script += [(4 * beat + k * beat, on(p)), (4 * beat + k * beat + 0.5, off(p))]
    e = Engine(LadderModel(offset=5), SETTINGS, seed=1)  # 5/12 of a beat: off the sixteenths
    out = simulate(e, script, until=30)
    (report,) = e.take_reports()
    assert report.tempo_source == "clock" and "MIDI clock" in report.grid
    times = np.array([t for t, m in out if m.type == "note_on" and m.velocity > 0])
    pos = times / beat  # the clock's song position 0 is its first tick, at 0
    grid = [min(abs(x - math.floor(x) - g) for g in (0, 0.25, 1 / 3, 0.5, 2 / 3, 0.75, 1)) for x in pos]
    assert len(times) >= 3 and max(grid) < 1e-6, pos


# ---- round 2: the level a musician taps, the set's grid kept, rubato, the phrase's bar lines ----


@pytest.mark.parametrize("bpm", [84, 88, 96])
def test_a_folk_tune_at_88_is_heard_at_88_not_176(bpm):
    """The demo's folk tunes (88 bpm, eighths and quarters) were heard at 176: with serve.bpm's
    prior (100) the level heard is the one within 71-141 bpm, as people tap."""
    rng = np.random.default_rng(bpm)
    beats = [0, 0.5, 1, 1.5, 2, 2.5, 3, 4, 4.5, 5, 5.5, 6, 6.5, 7]  # mostly eighths
    for _ in range(5):
        onsets, durations = played(beats, bpm, rng, jitter=0.015)
        assert track(onsets, 100.0, 0.1, durations).bpm == pytest.approx(bpm, rel=0.03)


def test_fast_quarters_in_four_are_heard_at_the_half_and_in_three_are_not():
    """184 bpm quarters accented in 4/4: the level near 100 (92) on the accented beats; in 3/4 the
    accents fall on either half of the beats, so the slower level is not taken."""
    rng = np.random.default_rng(3)
    for bar, want in ((4, 92.0), (3, 184.0)):
        beats = list(range(4 * bar))
        onsets, durations = played(beats, 184, rng, jitter=0.01)
        velocities = [100 if b % bar == 0 else 80 if b % 2 == 0 and bar == 4 else 60 for b in beats]
        pulse = track(onsets, 100.0, 0.1, durations, velocities)
        assert pulse.bpm == pytest.approx(want, rel=0.02), bar
        if bar == 4:  # its beats are the performer's bar lines and half bars
            assert abs(pulse.position(onsets[0]) - round(pulse.position(onsets[0]))) < 0.1


def test_the_set_tempo_rests_on_the_calls_before_where_the_grid_was_kept():
    """Calls at 92 bpm, jittered (sd 18 ms), each entering on the performer's bar line after the
    answer (the grid kept through it, as in trading fours). From the fourth call on, the grid 12
    beats past the call (where the answer ends) is within 25 ms of the performer's beat, in 10 sets
    out of 10 (the set's and the call's tempo only averaged, as before: up to 63 ms)."""
    from types import SimpleNamespace

    from improv.realtime.tempo import SetTempo

    beat = 60 / 92
    beats = [0, 1, 1.5, 2, 3, 4, 5, 5.5, 6, 7]
    worst = 0.0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        tempo = SetTempo(ServeSettings())
        for n in range(6):
            start = 1.0 + n * 16 * beat  # 8 beats of call, 8 of answer, on the same grid
            onsets, durations = played(beats, 92, rng, jitter=0.018, start=start)
            notes = [SimpleNamespace(onset=t, off=t + d, velocity=80, pitch=60) for t, d in zip(onsets, durations)]
            call = SimpleNamespace(notes=notes, first_onset=onsets[0], pos_before=None if n == 0 else start - 7 * beat, sound_before=None)
            pulse = tempo.hear(call, start + 9 * beat)
            tempo.keep(pulse)
            truth = start + 20 * beat
            if n >= 3:
                worst = max(worst, abs(pulse.time(round(pulse.position(truth))) - truth))
    assert worst < 0.025, worst


def test_a_call_that_speeds_up_is_answered_at_the_tempo_it_ends_on():
    """Rubato inside the call: quarters from 80 bpm rising to 88 over 12 beats; the grid goes on at
    its end (88), not at its mean (84)."""
    rng = np.random.default_rng(13)
    beats = np.arange(0, 13.0, 1.0)
    tempo = 80 + 8 * beats / 12
    onsets = 5.0 + np.concatenate([[0.0], np.cumsum(60 / tempo[:-1])]) + rng.normal(0, 0.01, len(beats))
    durations = np.full(len(beats), 0.3)
    pulse = track(onsets, 100.0, 0.1, durations)
    assert pulse.bent and pulse.bpm == pytest.approx(88, rel=0.02)


def test_the_bar_line_is_where_a_call_in_whole_bars_ends():
    """Three bars of 3/4 at even velocity: six quarters and a dotted half held to the bar line.
    The long last note and the phrase's edges (its first note, and where it ends) say where the bar
    starts; accents alone found it in none of these 20 (4/4 won), the edges in most."""
    found = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        onsets, _ = played([0, 1, 2, 3, 4, 5, 6], 100, rng, jitter=0.01)
        durations = [0.54] * 6 + [1.71]
        pulse = meter(track(onsets, 100.0, 0.1, durations), onsets, durations, [80] * 7, [64] * 7)
        found += pulse.beats_per_bar == 3 and round(pulse.position(onsets[0]) - pulse.downbeat) % 3 == 0
    assert found >= 12, found


def test_a_new_tempo_mid_set_is_heard_as_new_not_kept_on_a_fast_grid():
    """Traded without a pause, a call that alone says another tempo is heard on the set's grid
    where its onsets lie on it (short swung calls misled the comb); but calls at 120 after a set
    at 96 heard at its eighths (192, with --bpm 190) are heard at 120: their quarters land near
    some sixteenth or triplet of the fast grid, which is no kept grid (they were kept at 192)."""
    from types import SimpleNamespace

    from improv.realtime.tempo import SetTempo

    rng = np.random.default_rng(15)
    chorale = [0, 1, 1.5, 2, 3, 4, 4.5, 5, 6, 7]
    velocities = [96 if b % 4 == 0 else 64 for b in chorale]
    for seed in range(5):
        rng = np.random.default_rng(seed)
        tempo = SetTempo(ServeSettings(bpm=190.0))
        heard = []
        for n, bpm in enumerate((96, 96, 96, 120, 120)):
            start = 1.0 + n * 12.0
            onsets, durations = played(chorale, bpm, rng, jitter=0.016, start=start)
            notes = [SimpleNamespace(onset=t, off=t + d, velocity=v, pitch=60 + k % 5) for k, (t, d, v) in enumerate(zip(onsets, durations, velocities))]
            pulse = tempo.hear(SimpleNamespace(notes=notes, first_onset=onsets[0], pos_before=start - 1.0, sound_before=None), start + 8 * 60 / bpm)
            tempo.keep(pulse)
            heard.append(round(pulse.bpm))
        assert heard[0] == pytest.approx(192, abs=3) and all(kind_of_error(h, b) == "ok" for h, b in zip(heard, (96, 96, 96, 120, 120))), heard


def test_a_fast_call_heard_at_half_keeps_the_accented_beats():
    """Quarters at 200 bpm (heard at 100), 4/4 with a pickup, bar lines louder, mid-bar a little:
    the slower level's beats are the accented ones, not the weak beats the call's held last note
    falls on (a phrase ending on beat 4; the held note used to pull the half-tempo grid onto the
    performer's off-beats, and the bar entry with it)."""
    hits = 0
    for seed in range(30):
        rng = np.random.default_rng(seed)
        beats = list(range(-1, 8))
        onsets, durations = played(beats, 200, rng, jitter=0.012)
        durations[-1] = 1.5 * 60 / 200  # the last note held well past the call
        velocities = [int(64 + 12 * (b % 4 == 0) + 6 * (b % 4 == 2) + rng.normal(0, 4)) for b in beats]
        pulse = track(onsets, 100.0, 0.1, durations, velocities)
        assert pulse is not None and min(abs(pulse.bpm / b - 1) for b in (100, 200)) < 0.04
        x = pulse.position(onsets[beats.index(4)])  # a bar line: on a beat of the heard level
        hits += abs(x - round(x)) < 0.2
    assert hits >= 28, hits  # 24 of 30 before


def test_a_half_bar_whose_bar_lines_alternate_loud_and_soft_is_doubled():
    """4/4 at 40 bpm heard at 80 (its eighths are the beats tapped): bar lines loud, mid-bars
    less. A bar of 4 heard beats would enter mid-bar half the time; the loud ones start the bar."""
    found = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        beats = list(range(0, 16))  # eighths of the performer: heard beats at 80
        onsets, durations = played(beats, 80, rng, jitter=0.012)
        velocities = [int(64 + 14 * (b % 8 == 0) + 7 * (b % 8 == 4) + rng.normal(0, 3)) for b in beats]
        pulse = meter(track(onsets, 80.0, 0.1, durations), onsets, durations, velocities, [64] * 16, prefer=4)
        down = pulse.position(onsets[8])  # the second bar line
        found += pulse.beats_per_bar == 8 and round(down - pulse.downbeat) % 8 == 0
    assert found >= 17, found  # 14 of 20 before


def test_a_swung_call_in_a_swung_set_stays_on_the_sets_beat():
    """Traded at 120 with a 2:1 swing: after a call of plain swung eighths, a syncopated one (loud
    off-beats held over the beat) is heard on the set's beats. Alone, the comb puts its beats on
    the off-beats (10 of 10 here) and the answer entered a third of a beat off (the swing set's
    misses in bench_pulse)."""
    from types import SimpleNamespace

    from improv.realtime.tempo import SetTempo

    eighths, syncopated = [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 5, 6], [0, 0.5, 1.5, 2.5, 3.5, 4, 4.5, 5.5]
    on_beat = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        tempo = SetTempo(ServeSettings())
        for n, (beats, loud) in enumerate(((eighths, False), (syncopated, True))):
            start = 1.0 + n * 12 * 0.5  # the second call on the set's grid, 12 beats on
            onsets, durations = played(beats, 120, rng, jitter=0.016, start=start, swing=2.0)
            velocities = [80 if loud and b % 1 else 64 for b in beats]
            notes = [SimpleNamespace(onset=t, off=t + d, velocity=v, pitch=64) for t, d, v in zip(onsets, durations, velocities)]
            pulse = tempo.hear(SimpleNamespace(notes=notes, first_onset=onsets[0], pos_before=start - 1.0 if n else None, sound_before=None), start + 4.0)
            tempo.keep(pulse)
        x = pulse.position(onsets[0])
        on_beat += abs(x - round(x)) < 0.1 and pulse.bpm == pytest.approx(120, rel=0.02)
    assert on_beat >= 6, on_beat  # 0 of 10 before; the misses: a first call heard 1-2 % slow, 12 beats back


def test_a_short_call_in_three_with_two_beats_struck_finds_its_bar_from_its_edges():
    """A 3/4 folk call of five notes: an eighth pickup, the bar line loud, one more beat struck, an
    off-beat, and the last note held to the bar line (the call ends there, as a traded call does).
    Only two of its beats carry an onset: the metre used to give up (4/4 from beat 0, whatever
    was played); the pickup, the loud bar line and where the call ends place the bar."""
    written = [2.5, 3.0, 3.5, 4.0, 5.5]
    found = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        onsets, _ = played(written, 100, rng, jitter=0.012)
        durations = [0.27, 0.27, 0.27, 0.81, 0.27]  # the last note held to the bar line, at beat 6
        velocities = [int(64 + 12 * (b == 3.0) + rng.normal(0, 4)) for b in written]
        pulse = meter(track(onsets, 100.0, 0.1, durations, velocities), onsets, durations, velocities, [67, 72, 71, 69, 67])
        down = pulse.position(onsets[1])  # the bar line, at written beat 3
        found += pulse.beats_per_bar == 3 and round(down - pulse.downbeat) % 3 == 0
    assert found >= 16, found


def test_traded_calls_keep_counting_the_sets_bars():
    """Traded at 100 bpm: a first call in 4/4 with loud bar lines, then one on the same grid at
    even velocity that starts and ends mid-bar (beat 3 of a bar to beat 3 of another). Its edges
    alone put the bar lines on its beat 3; players trading fours keep counting the set's bars."""
    from types import SimpleNamespace

    from improv.realtime.tempo import SetTempo

    kept = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        tempo = SetTempo(ServeSettings())
        calls = ((list(range(0, 8)), True), (list(range(14, 22)), False))
        for n, (beats, loud) in enumerate(calls):
            onsets, durations = played(beats, 100, rng, jitter=0.012, start=1.0)
            velocities = [int(64 + 14 * (loud and b % 4 == 0) + rng.normal(0, 3)) for b in beats]
            notes = [SimpleNamespace(onset=t, off=t + d, velocity=v, pitch=64) for t, d, v in zip(onsets, durations, velocities)]
            pulse = tempo.hear(SimpleNamespace(notes=notes, first_onset=onsets[0], pos_before=onsets[0] - 1.0 if n else None, sound_before=None), onsets[-1] + 1.0)
            tempo.keep(pulse)
        bar_line = pulse.position(1.0 + 16 * 0.6)  # beat 16: a bar line of the set
        kept += pulse.beats_per_bar in (4, 8) and round(bar_line - pulse.downbeat) % pulse.beats_per_bar in (0, 4)
    assert kept >= 8, kept


def test_a_bar_heard_from_accents_is_clear_and_one_from_even_quarters_is_a_guess():
    """``Pulse.bar_clear``: loud bar lines over three bars make a clear bar, every time; five even
    quarters (their edges fit no bar: 4 from the start, 4 to the end, 3, 2 alike) leave it a
    guess about half the time (velocity noise alone can tip it). The benchmark counts bar entry
    where the metre is clear apart."""
    from improv.music.metre import BAR_CLEAR

    clear = guess = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        beats = list(range(0, 12))
        onsets, durations = played(beats, 100, rng, jitter=0.012)
        loud = [int(64 + 16 * (b % 4 == 0) + rng.normal(0, 3)) for b in beats]
        even = [int(64 + rng.normal(0, 3)) for b in beats]
        clear += meter(track(onsets, 100.0, 0.1, durations, loud), onsets, durations, loud, [64] * 12).bar_clear > BAR_CLEAR
        guess += meter(track(onsets[:5], 100.0, 0.1, durations[:5]), onsets[:5], durations[:5], even[:5], [64] * 5).bar_clear <= BAR_CLEAR
    assert clear == 20 and guess >= 7, (clear, guess)


def test_a_fast_three_four_heard_at_half_tempo_enters_on_its_bar_lines():
    """3/4 at 176 bpm, a short folk call (quarters from beat 3 of a bar, the bar line loud, held to
    the next bar line), heard at 88: its bar lines fall on every other half beat heard. Bars of
    4 heard beats entered mid-bar; three heard beats (two bars of 3/4) enter on a bar line."""
    on_bar = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        written = [2.0, 3.0, 4.0, 5.0]
        onsets, _ = played(written, 176, rng, jitter=0.012)
        durations = [0.31] * 3 + [0.31]
        velocities = [int(64 + 12 * (b % 3 == 0) + rng.normal(0, 4)) for b in written]
        pulse = meter(track(onsets, 100.0, 0.1, durations, velocities), onsets, durations, velocities, [72, 67, 69, 71])
        entry = pulse.time(pulse.next_downbeat(onsets[-1] + 0.6))
        bars = (entry - 10.0) / (60 / 176) / 3  # performer's bars from its bar line at beat 0
        on_bar += abs(bars - round(bars)) < 0.1
    assert on_bar >= 15, on_bar


# kinder0.abc#177's first two bars (held-out in bench_pulse): a pickup eighth, then beats 2, 2.75,
# 3 and 3.5 (a 2/4 bar line at 2). The call starts on an off-beat, so the beat before its first note
# is no part of it: counted as an empty beat, it put the true 120 below grids 6 % off, and the
# call was heard at 80 (2:3) or near it.
PICKUP_CALL = [1.5, 2.0, 2.75, 3.0, 3.5]
PICKUP_LENGTHS = [0.5, 0.75, 0.25, 0.5, 0.5]  # beats
PICKUP_ACCENTS = [0, 12, 0, 6, 0]  # the bar line, the half bar (as bench_pulse's performer plays)


def test_a_call_starting_on_an_off_beat_is_heard_at_its_tempo_not_two_thirds():
    # the held-out performance that bench_pulse heard at 81.6 (its onsets, lengths and velocities as the engine had them)
    onsets = [10.0, 10.231, 10.6127, 10.7468, 10.9672]
    pulse = track(onsets, 100.0, 0.1, [0.225, 0.338, 0.112, 0.225, 0.225], [60, 66, 66, 75, 57])
    assert pulse is not None and kind_of_error(pulse.bpm, 120) == "ok", pulse
    # ... and most performances of it (before: 4 of these 60 right, now 38; the rest mostly heard as
    # 3 of its notes on the beats of 160: the phrase's own dotted-eighth pattern, then halved)
    rng = np.random.default_rng(0)
    right = 0
    for _ in range(60):
        onsets, _ = played(PICKUP_CALL, 120, rng, jitter=float(rng.uniform(0.012, 0.02)))
        velocities = 64 + np.array(PICKUP_ACCENTS) + rng.normal(0, 6, len(PICKUP_CALL))
        pulse = track(onsets, 100.0, 0.1, 0.9 * 0.5 * np.array(PICKUP_LENGTHS), velocities)
        right += kind_of_error(getattr(pulse, "bpm", None), 120) == "ok"
    assert right >= 30, right
