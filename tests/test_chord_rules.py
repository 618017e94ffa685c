"""The chordal answers' rules (``realtime.chord_rules``): ``fullness``, chords as full as the
call's, onset by onset. (``voicing``'s tests are in test_processors.)"""

from __future__ import annotations

import numpy as np

from improv.music.tokenizer import OFFSET, PITCH
from improv.realtime.chord_rules import FULLNESS_REACH, fullness, grows_past
from improv.realtime.processors import Processor, step_of
from tests.test_processors import VALUES, bend, make_answer


def joins(logits: np.ndarray) -> float:
    p = np.exp(logits - logits.max())
    return float(p[0] / p.sum())


def test_grows_past_reads_how_often_the_calls_chords_grew():
    sizes = (4, 2, 2, 2, 1, 2, 2, 3)
    assert grows_past(sizes, 1) == (7 + 0.5) / (8 + 1)  # all but one onset took a second note
    assert grows_past(sizes, 2) == (2 + 0.5) / (7 + 1)  # few took a third
    assert grows_past(sizes, 4) == 0.5 / 2  # none took a fifth: unlikely, not ruled out


def test_fullness_an_onset_grows_as_often_as_the_calls_did():
    sizes = (4, 2, 2, 2, 1, 2, 2, 3)  # mostly two notes an onset over a held part
    two = make_answer(sampled=2, onsets=1, onset_pitches={48, 60}, max_voices=4, call_sizes=sizes)
    logits, mask = bend(fullness, two, OFFSET)  # the voice alone: every offset alike
    assert mask is None and abs(joins(logits) - grows_past(sizes, 2)) < 1e-9
    one = make_answer(sampled=1, onsets=1, onset_pitches={48}, max_voices=4, call_sizes=sizes)
    even = np.zeros(len(logits))
    even[0] = np.log(len(even) - 1)  # a voice that joins the onset half the time
    bent, _ = Processor("fullness", fullness)(step_of(one, VALUES, False), OFFSET, np.zeros(4, dtype=np.int64), even, None)
    assert abs(joins(bent) - grows_past(sizes, 1)) < 1e-9  # a second note: likely
    assert bend(fullness, one, OFFSET)[0][0] == FULLNESS_REACH  # the voice never joins: bent as far as it goes, no further
    three = make_answer(sampled=3, onsets=1, onset_pitches={48, 55, 60}, max_voices=4, call_sizes=(4, 4, 4, 4))
    assert joins(bend(fullness, three, OFFSET)[0]) > 0.05  # a call of full chords: the chord fills up (bent the whole reach)
    full = make_answer(sampled=4, onsets=1, onset_pitches={48, 55, 60, 64}, max_voices=4, call_sizes=(4, 4, 4, 4))
    assert bend(fullness, full, OFFSET)[0][0] < bend(fullness, three, OFFSET)[0][0]
    half = bend(fullness, two, OFFSET, strength=0.5)[0][0]
    assert 0 < half < logits[0]  # half the strength, half the bend


def test_fullness_leaves_lines_first_notes_pitches_and_the_off_switch_alone():
    sizes = (3, 3, 1, 1)
    assert not bend(fullness, make_answer(sampled=1, onsets=1, onset_pitches={60}, max_voices=1, call_sizes=(1, 1, 1)), OFFSET)[0].any()  # a line
    assert not bend(fullness, make_answer(max_voices=3, call_sizes=sizes), OFFSET)[0].any()  # the answer's first note
    chord = make_answer(sampled=1, onsets=1, onset_pitches={60}, max_voices=3, call_sizes=sizes)
    assert not bend(fullness, chord, PITCH)[0].any()
    assert not bend(fullness, chord, OFFSET, strength=0.0)[0].any()


def test_a_motifs_chord_as_full_as_the_calls_waits_no_longer_for_its_top():
    from improv.realtime.shaping import ChordTop

    waiting = ChordTop(wanted=72, pitches={48, 60}, voices=3, strength=5.0)
    assert waiting.waiting and waiting.offset_bias(np.zeros(8))[0] == 5.0  # room for its top: the chord waits
    full = ChordTop(wanted=72, pitches={48, 55, 60}, voices=3, strength=5.0)
    assert not full.waiting and not full.offset_bias(np.zeros(8)).any()  # as full as the call's there: free
    done = ChordTop(wanted=72, pitches={48, 72}, voices=3, strength=5.0)
    assert done.offset_bias(np.zeros(8))[0] == -5.0  # its top sounds: complete
