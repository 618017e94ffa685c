"""The answer's rules as processors (``realtime.processors``): each one alone, its strength and its
switch; the constraints always on; the guide bending logits after the temperature."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from improv.model.sampling import SamplingParams
from improv.model.step_model import random_step_model
from improv.music.tokenizer import BOS, DURATION, N_PITCH, OFFSET, PITCH, Tokenizer
from improv.realtime.answer import Answer, CallReading, Sampling
from improv.realtime.echo_rule import echo, echo_targets
from improv.realtime.processors import RULES, Processor, answer_processors, cadence, density, motif, one_key, opening, register, step_of, texture
from improv.realtime.shaping import Motif, tonic_triad
from improv.settings.serve_section import ServeSettings

TOK = Tokenizer()
VALUES = TOK.time_values
C = (0, False)


def make_answer(**fields) -> Answer:
    """An answer with these fields of its call reading and its sampling (the rest as prepared)."""
    mask = np.zeros(N_PITCH, dtype=bool)
    mask[21:109] = True
    fields = {"mask": mask, **fields}
    read = {f.name for f in dataclasses.fields(CallReading)}
    reading = CallReading(version=0, voice=0, bpm=120.0, tempo_source="", key="", target=8.0, rows=None, call_rows=None, pos_after_call=None, **{k: v for k, v in fields.items() if k in read})
    return Answer(reading, Sampling(rng=np.random.default_rng(0), **{k: v for k, v in fields.items() if k not in read}))


def bend(process, answer: Answer, field: int, strength: float = 1.0, offset: int = 0, cadence_near: bool = False):
    step = step_of(answer, VALUES, cadence_near)
    row = np.zeros(4, dtype=np.int64)
    row[OFFSET] = offset
    size = TOK.sizes[field] if field != PITCH else N_PITCH
    return Processor(process.__name__, process, strength)(step, field, row, np.zeros(size), None)


def test_one_key_is_a_constraint_at_any_strength():
    answer = make_answer(sampled=2, onsets=1, onset_pitches={60, 64}, max_voices=3)
    _, mask = Processor("one_key", one_key, 0.0, hard=True)(step_of(answer, VALUES, False), PITCH, np.zeros(4, dtype=np.int64), np.zeros(N_PITCH), None)
    assert mask is not None and not mask[60] and not mask[64] and mask[67]


def test_texture_a_line_answers_a_line_and_switches_off():
    line = make_answer(sampled=1, onsets=1, onset_pitches={60}, max_voices=1)
    _, mask = bend(texture, line, OFFSET)
    assert mask is not None and not mask[0] and mask[1:].all()
    assert bend(texture, line, OFFSET, strength=0.0)[1] is None
    chords = make_answer(sampled=1, onsets=1, onset_pitches={60}, max_voices=3)
    assert bend(texture, chords, OFFSET)[1] is None  # room for two more notes


def test_register_scales_with_its_strength():
    bias = np.linspace(-1, 0, N_PITCH)
    answer = make_answer(pitch_bias=bias)
    assert np.allclose(bend(register, answer, PITCH)[0], bias)
    assert np.allclose(bend(register, answer, PITCH, strength=2.0)[0], 2 * bias)
    assert not bend(register, answer, PITCH, strength=0.0)[0].any()


def test_motif_leans_to_the_motifs_next_note_rhythm_and_length():
    m = Motif(offsets=[0, 6, 12], durations=[6, 6, 12], pitches=[64, 65, 67], span=3, strength=5.0)
    answer = make_answer(sampled=1, onsets=1, max_voices=1, motif=m, line_pitch=62)
    logits, _ = bend(motif, answer, PITCH, offset=6)
    assert logits.argmax() == 63 and logits[63] == 5.0  # the motif's step up, from where the line is
    assert bend(motif, answer, PITCH, strength=0.5, offset=6)[0][63] == 2.5
    assert bend(motif, answer, OFFSET)[0].argmax() == 6
    assert bend(motif, answer, DURATION, offset=6)[0].argmax() == 6
    done = make_answer(sampled=4, onsets=3, max_voices=1, motif=m, line_pitch=67)
    assert not bend(motif, done, PITCH, offset=6)[0].any()  # past its span: free


def test_cadence_only_near_the_end():
    answer = make_answer(sampled=4, onsets=4, beats=3.0, tonality=C)
    assert not bend(cadence, answer, PITCH, offset=TOK.sizes[OFFSET] - 1)[0].any()
    one_beat = int(np.flatnonzero(np.isclose(VALUES, 1.0))[0])
    logits, _ = bend(cadence, answer, PITCH, offset=one_beat, cadence_near=True)
    assert np.array_equal(logits > 0, tonic_triad(C))
    assert bend(cadence, answer, DURATION, cadence_near=True)[0][one_beat] > 0


def test_opening_on_the_tonic_triad():
    first = make_answer(tonality=C)
    assert np.array_equal(bend(opening, first, PITCH)[0] > 0, tonic_triad(C))
    later = make_answer(sampled=3, onsets=2, tonality=C)
    assert not bend(opening, later, PITCH, offset=6)[0].any()


def test_the_settings_switch_each_rule():
    names = [p.name for p in answer_processors(ServeSettings())]
    assert names == ["one_key", *RULES] and {"density", "echo"} <= set(RULES)
    off = {p.name: p.strength for p in answer_processors(ServeSettings(rule_motif=0.0, rule_register=2.0))}
    assert off["motif"] == 0.0 and off["register"] == 2.0 and off["texture"] == 1.0
    plain = {p.name: p.strength for p in answer_processors(ServeSettings(phrase_ending=False))}
    assert plain["cadence"] == plain["opening"] == 0.0


def test_the_guide_bends_after_the_temperature():
    model = random_step_model(hidden_size=16, embed_dim=8, seed=1)
    state = model.step(model.initial_state(), model.tokenizer.special(BOS))
    seen: list[np.ndarray] = []

    def watch(field, row, logits, mask):
        seen.append(np.array(logits))
        return logits, mask

    model.sample_event(state, np.random.default_rng(0), SamplingParams(temperature=1.0), None, watch)
    raw = seen[:]
    seen.clear()
    model.sample_event(state, np.random.default_rng(0), SamplingParams(temperature=0.5), None, watch)
    assert np.allclose(seen[0], raw[0] / 0.5)  # the first head's logits, divided before the guide
    # A rule's bonus is then drawn at temperature 1: a +inf-like bonus wins at any temperature.
    def force(field, row, logits, mask):
        if field == PITCH:
            logits = logits.copy()
            logits[70] += 50.0
        return logits, mask

    for t in (0.25, 4.0):
        row = model.sample_event(state, np.random.default_rng(3), SamplingParams(temperature=t), None, force)
        assert row[PITCH] == 70


def test_the_answer_rules_off_still_answer_in_range():
    from improv.evaluation.answers import engine_answer
    from improv.music.notes import Note, note_array

    model = random_step_model(hidden_size=16, embed_dim=8, seed=2)
    call = note_array([Note(60 + 2 * i, float(i), 1.0, 80) for i in range(6)])
    bare = dataclasses.replace(ServeSettings(), **{f"rule_{name}": 0.0 for name in RULES}, lowest_pitch=55, highest_pitch=70)
    played = engine_answer(model, bare, SamplingParams(), call, span=6.0, bpm=120.0, seed=0)
    assert len(played.notes) and 55 <= played.notes["pitch"].min() and played.notes["pitch"].max() <= 70


@pytest.mark.parametrize("name", list(RULES))
def test_a_rule_out_of_range_is_one_line(name):
    from improv.errors import ImprovError
    from improv.settings.load import load_settings

    with pytest.raises(ImprovError, match=f"rule_{name}"):
        load_settings(None, [f"serve.rule_{name}=-1"])


def test_density_bends_offsets_that_would_run_away_from_the_calls_density():
    quarter = int(np.flatnonzero(np.isclose(VALUES, 1.0))[0])
    sixteenth = int(np.flatnonzero(np.isclose(VALUES, 0.25))[0])
    answer = make_answer(sampled=8, onsets=8, beats=2.0, call_density=1.0)  # 8 notes in 2 beats after a quarter-note call
    logits, _ = bend(density, answer, OFFSET)
    assert logits[sixteenth] < logits[quarter] <= 0 and logits[0] < logits[sixteenth]
    assert not bend(density, answer, OFFSET, strength=0.0)[0].any()
    even = make_answer(sampled=4, onsets=4, beats=3.0, call_density=1.0)  # at the call's pace: a quarter is free
    assert bend(density, even, OFFSET)[0][quarter] == 0
    faster = make_answer(sampled=8, onsets=8, beats=2.0, call_density=1.0, density_dial=4.0)  # the dial asks for 4 a beat
    assert bend(density, faster, OFFSET)[0][sixteenth] > logits[sixteenth]


def test_echo_bends_away_the_third_note_of_a_call_played_back():
    answer = make_answer(sampled=2, onsets=2, call_line=[60, 62, 64, 65], line=[60, 62])
    logits, _ = bend(echo, answer, PITCH, offset=6)
    assert logits[64] < 0 and np.count_nonzero(logits) == 1
    assert not bend(echo, make_answer(sampled=2, onsets=2, call_line=[60, 62, 64, 65], line=[60, 63]), PITCH, offset=6)[0].any()
    assert not bend(echo, make_answer(sampled=1, onsets=1, call_line=[60, 62, 64], line=[60]), PITCH, offset=6)[0].any()
    meant = make_answer(sampled=2, onsets=2, call_line=[60, 62, 64, 65], line=[60, 62], motif=Motif([0, 6], [6, 6], [60, 62], 2, 5.0))
    assert not bend(echo, meant, PITCH, offset=6)[0].any()  # at imitation 1 it may be meant


def test_echo_bends_away_the_call_restated_a_fifth_up_and_long_runs_of_its_intervals():
    call = [60, 62, 64, 65, 67, 69]
    up = make_answer(sampled=3, onsets=3, call_line=call, line=[67, 69, 71])  # the call's opening, a fifth up
    logits, _ = bend(echo, up, PITCH, offset=6)
    assert logits[72] < 0 and np.count_nonzero(logits) == 1  # its fourth note (65 moved up: 72) bent away
    assert not bend(echo, make_answer(sampled=2, onsets=2, call_line=call, line=[67, 69]), PITCH, offset=6)[0].any()  # a head of three may come
    # Anywhere in the answer: six notes following the call's intervals (its first six, moved down a
    # tenth), the seventh is bent away; a figure of four or five may come (real answers take those up).
    long_call = [60, 62, 64, 65, 67, 69, 71, 72]
    later = make_answer(sampled=7, onsets=7, call_line=long_call, line=[40, 50, 52, 54, 55, 57, 59])
    logits, _ = bend(echo, later, PITCH, offset=6)
    assert logits[61] < 0 and np.count_nonzero(logits) == 1
    assert not bend(echo, later, PITCH, strength=0.0, offset=6)[0].any()
    shorter = make_answer(sampled=6, onsets=6, call_line=long_call, line=[40, 41, 52, 54, 55, 57])
    assert not bend(echo, shorter, PITCH, offset=6)[0].any()
    assert echo_targets([67, 69, 71], [60, 62]) == set()  # a call shorter than the answer's line: nothing to copy


def test_the_density_knob_moves_the_next_answer():
    from improv.realtime.engine import Engine
    from tests.support.fakes import cc, phrase, simulate

    s = ServeSettings(estimate_tempo=False, keep_key=False)
    e = Engine(random_step_model(hidden_size=16, embed_dim=8, seed=1), s)
    simulate(e, [(0.0, cc(s.cc_density, 127))], until=0.1)
    assert e.density == pytest.approx(4.0, rel=0.03)
    simulate(e, [(0.2, cc(s.cc_density, 0))], until=0.3, start=0.2)
    assert e.density == pytest.approx(0.25)


def test_voicing_a_bass_in_the_calls_bass_register_and_no_clusters():
    from improv.realtime.chord_rules import voicing
    from improv.realtime.shaping import call_bass

    rows = [np.array([p, 0, 12, 4]) for p in (48, 60, 64, 50, 62, 65)]
    assert call_bass(rows, [False, True, True, False, True, True]) == 49.0
    assert call_bass(rows, [False] * 6) is None  # a line has no chords
    chords = make_answer(max_voices=3, call_bass=48.0)
    logits, _ = bend(voicing, chords, PITCH)  # a chord's first (lowest) note
    assert logits[48] == 0 and logits[60] < -3 and logits[72] < logits[60]
    assert logits[36] == 0  # below the call's bass: free (the register rule holds the floor); bent both ways, answers' basses lay above their calls'
    cluster = make_answer(sampled=2, onsets=1, max_voices=3, onset_pitches={74, 76})
    _, mask = bend(voicing, cluster, PITCH, offset=0)
    assert mask is not None and not mask[75] and mask[73] and mask[77] and mask.sum() == len(mask) - 3  # D, E and the E flat between: a cluster
    assert bend(voicing, cluster, PITCH, offset=0, strength=0.0)[1] is None
    assert bend(voicing, make_answer(max_voices=1, call_bass=48.0), PITCH)[0].any() == False  # a line: nothing


def test_key_rules_out_stray_notes_and_bends_meant_ones():
    from improv.realtime.processors import KEY_NATS, key

    c_major = np.zeros(N_PITCH, dtype=bool)
    c_major[:128] = np.isin(np.arange(128) % 12, [0, 2, 4, 5, 7, 9, 11])
    answer = make_answer(mask=c_major)
    logits = np.full(N_PITCH, -10.0)
    logits[[60, 62, 66]] = [1.0, 0.5, 1.0]  # the voice means F sharp as much as C
    step = step_of(answer, VALUES, False)
    bent, mask = Processor("key", key, 1.0)(step, PITCH, np.zeros(4, dtype=np.int64), logits, None)
    assert mask[66] and mask[60] and not mask[61] and not mask[70]  # C sharp, B flat: stray, ruled out
    assert bent[66] == logits[66] - KEY_NATS and bent[60] == logits[60]
    off, none = Processor("key", key, 0.0)(step, PITCH, np.zeros(4, dtype=np.int64), logits, None)
    assert none is None and np.array_equal(off, logits)


def test_a_chord_waits_for_its_top_note_at_the_default_imitation():
    """Chords are drawn lowest first under a cap at the motif's top note; one that moved on before
    reaching it sat under the call (renaissance: top 3.6 semitones low). Offset 0 (another note of
    the onset) stays likelier until the top sounds, whatever the imitation."""
    m = Motif(offsets=[0, 12, 12], durations=[12, 12, 12], pitches=[67, 69, 72], span=3, strength=5.0 * 0.75)
    open_chord = make_answer(sampled=2, onsets=2, max_voices=3, motif=m, line_before=67, line_pitch=55, onset_pitches={55})
    logits, _ = bend(motif, open_chord, OFFSET)
    assert logits[0] > 1.0  # the chord goes on toward its top (69)
    done = make_answer(sampled=3, onsets=2, max_voices=3, motif=m, line_before=67, line_pitch=69, onset_pitches={55, 69})
    assert bend(motif, done, OFFSET)[0][0] < 0  # top reached: the onset is complete


def test_the_motif_is_the_calls_tail_below_imitation_one_and_the_whole_call_at_one():
    """Below imitation 1 the answer picks up the call's last figure, not its head: opening with the
    call's first intervals is an echo (which the echo rule then breaks off, so folk's answers
    echoed 0.78 first intervals against real 0.38 and took up the motif 0.56x as often)."""
    from improv.realtime.shaping import make_motif

    pitches = [60, 62, 64, 65, 67, 64, 72, 71]  # intervals 2 2 1 2 -3 8 -1
    rows = [np.array([p, 0 if k == 0 else 6, 6, 4], dtype=np.uint8) for k, p in enumerate(pitches)]
    chords = [False] * len(rows)
    half = make_motif(rows, chords, 0.5, C, np.random.default_rng(0), VALUES)
    assert half is not None and half.span == 4
    assert np.diff(half.pitches).tolist() == [-3, 8, -1]  # the call's last four notes' shape, moved
    whole = make_motif(rows, chords, 1.0, C, np.random.default_rng(0), VALUES)
    assert whole is not None and whole.span == 8 and np.diff(whole.pitches).tolist() == [2, 2, 1, 2, -3, 8, -1]
    head = make_motif(rows, chords, 0.5, C, np.random.default_rng(0), VALUES, tail=False)  # chords answering chords
    assert head is not None and np.diff(head.pitches).tolist() == [2, 2, 1]


def test_a_line_takes_up_the_calls_tail_and_chords_its_head():
    """The engine's motif: a line's answer the call's tail, a chordal one the call's head."""
    from improv.realtime.planner import Planner
    from improv.realtime.quantiser import Quantiser

    planner = Planner(ServeSettings(), Quantiser(TOK), 0, 0)
    rows = [np.array([p, 0 if k == 0 else 6, 6, 4], dtype=np.uint8) for k, p in enumerate([60, 62, 64, 65, 67, 64, 72, 71])]
    for voices, shape in ((1, [-3, 8, -1]), (3, [2, 2, 1])):
        reading = make_answer(max_voices=voices, tonality=C, motif_call=(rows, [False] * 8)).reading
        m = planner._sampling(reading, 0, 0.5, None).motif
        assert m is not None and np.diff(m.pitches).tolist() == shape, voices


def test_a_line_that_strayed_from_the_calls_middle_turns_back():
    """A call that ends on a rising arpeggio (G4 .. G5, middle B4) got a folk answer that took up the
    rise and climbed on to C6. Past the band the register rule makes further-out notes cost, on
    the side the line strayed to; inside it, nothing; chords are left to the voicing."""
    from improv.realtime.processors import TURN_BAND, TURN_SLOPE

    call_line = [67, 69, 71, 72, 74, 72, 71, 69, 67, 71, 74, 79]  # median 71 (B4)
    flat = np.zeros(N_PITCH)
    high = make_answer(sampled=3, onsets=3, max_voices=1, pitch_bias=flat, call_line=call_line, line=[74, 77, 79])
    logits, _ = bend(register, high, PITCH, offset=6)
    edge = int(71 + TURN_BAND)  # 75: the band's last note above the middle
    assert logits[edge] == 0.0 and logits[72] == 0.0 and logits[60] == 0.0
    assert logits[79] == pytest.approx(-TURN_SLOPE * 4) and logits[84] < logits[79]
    first = make_answer(max_voices=1, pitch_bias=flat, call_line=call_line)  # the call's own last note strayed
    assert bend(register, first, PITCH)[0][84] < 0
    low = make_answer(sampled=2, onsets=2, max_voices=1, pitch_bias=flat, call_line=call_line, line=[66, 64])
    low_logits = bend(register, low, PITCH, offset=6)[0]
    assert low_logits[60] < 0 and low_logits[84] == 0.0  # strayed below: only further down costs
    home = make_answer(sampled=2, onsets=2, max_voices=1, pitch_bias=flat, call_line=call_line, line=[72, 74])
    assert not bend(register, home, PITCH, offset=6)[0].any()
    chords = make_answer(sampled=3, onsets=3, max_voices=3, pitch_bias=flat, call_line=call_line, line=[74, 77, 79])
    assert not bend(register, chords, PITCH, offset=6)[0].any()
    assert not bend(register, high, PITCH, strength=0.0, offset=6)[0].any()
    m = Motif(offsets=[0, 6, 6, 6, 6], durations=[6] * 5, pitches=[72, 74, 77, 79, 84], span=5, strength=3.75)
    climbing = make_answer(sampled=3, onsets=3, max_voices=1, pitch_bias=flat, call_line=call_line, line=[74, 77, 79], motif=m)
    assert not bend(register, climbing, PITCH, offset=6)[0].any()  # the motif it takes up may climb; the turn comes after


def test_voicing_leaves_a_part_moving_over_a_held_bass_free():
    """The bass is bent at an onset only when no note held into it already sounds in the bass
    register: a renaissance part moving over a held bass was pulled down into the bass (its
    answers' top 2.0 semitones under the call's, real 0.0)."""
    from improv.realtime.chord_rules import voicing

    over_bass = make_answer(sampled=3, onsets=1, beats=0.0, max_voices=3, call_bass=48.0, sounding=[(4.0, 48), (1.0, 60), (1.0, 64)])
    logits, _ = bend(voicing, over_bass, PITCH, offset=12)  # a beat on: the bass (to beat 4) still sounds
    assert not logits.any()  # the moving part is free
    bass_gone = make_answer(sampled=3, onsets=1, beats=0.0, max_voices=3, call_bass=48.0, sounding=[(1.0, 48), (1.0, 60), (1.0, 64)])
    logits, _ = bend(voicing, bass_gone, PITCH, offset=12)  # everything ended: the new chord needs its bass
    assert logits[48] == 0 and logits[60] < -3


def test_a_chord_grows_as_full_as_the_calls_chord_at_that_onset_before_its_top():
    """A chordal answer's chord at a motif onset is drawn toward its top note by the time it has as
    many notes as the call struck there, not its fullest chord: waiting for the fullest made
    renaissance's chords fuller than the call's (2.67 notes an onset, call 2.31)."""
    from improv.realtime.shaping import make_motif

    rows = [np.array([p, 0 if chord else 12, 12, 4], dtype=np.uint8) for p, chord in ((48, False), (60, True), (67, True), (69, False), (53, False), (65, True), (72, True))]
    chords = [False, True, True, False, False, True, True]
    m = make_motif(rows, chords, 0.75, C, np.random.default_rng(0), VALUES, tail=False)
    assert m is not None and m.sizes == [3, 1, 3][: m.span]
    single = make_answer(sampled=3, onsets=1, beats=0.0, max_voices=3, motif=m, line_pitch=67, line_before=None)
    wanted = m.pitches[1] - m.pitches[0] + 67
    logits, _ = bend(motif, single, PITCH, offset=12)  # the new onset's first note: the call struck one note here
    assert logits[wanted] == pytest.approx(m.strength)  # its top at once, as the call's single note was (a third of it when waiting for three)
