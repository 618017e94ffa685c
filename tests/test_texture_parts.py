"""The texture rule counts the parts sounding, held or struck: a part moving under held notes
moves alone (``processors.texture``, ``shaping.call_parts``)."""

from __future__ import annotations

from types import SimpleNamespace

from improv.music.tokenizer import OFFSET
from improv.realtime.processors import texture
from improv.realtime.shaping import Motif, call_parts
from tests.test_processors import bend, make_answer


def note(onset: float, off: float | None) -> SimpleNamespace:
    return SimpleNamespace(onset=onset, off=off)


def test_call_parts_counts_notes_held_and_struck():
    chorale = [note(0.0, 1.0), note(0.0, 1.0), note(0.0, 1.0), note(0.0, 0.5), note(0.5, 1.0)]  # one part moves under three held
    assert call_parts(chorale, 0.04) == 4
    assert call_parts(chorale + [note(0.5, 1.0)], 0.04) == 5  # two parts move over three held
    legato = [note(0.0, 0.51), note(0.5, 1.0)]  # a line's note released 10 ms after the next's onset
    assert call_parts(legato, 0.04) == 1 and call_parts(legato, 0.0) == 2
    assert call_parts([note(0.0, None), note(1.0, 2.0)], 0.04) == 2  # a key still down sounds
    assert call_parts([], 0.04) == 0


def test_no_note_joins_an_onset_once_the_calls_parts_sound():
    # Beat 2: three notes held from beat 1 (to beat 3), one struck at beat 2: four parts sound.
    held = [(3.0, 48), (3.0, 55), (3.0, 64)]
    passing = make_answer(sampled=4, onsets=2, beats=2.0, max_voices=4, max_parts=4, onset_pitches={67}, sounding=held + [(2.5, 67)])
    _, mask = bend(texture, passing, OFFSET)
    assert mask is not None and not mask[0] and mask[1:].all()  # the passing note moves alone
    assert bend(texture, passing, OFFSET, strength=0.0)[1] is None  # the rule's switch
    released = make_answer(sampled=4, onsets=2, beats=2.0, max_voices=4, max_parts=4, onset_pitches={67}, sounding=[(2.0, 48), (3.0, 55), (3.0, 64), (2.5, 67)])
    assert bend(texture, released, OFFSET)[1] is None  # the bass ended at the onset: room for a note
    unknown = make_answer(sampled=4, onsets=2, beats=2.0, max_voices=4, onset_pitches={67}, sounding=held + [(2.5, 67)])
    assert bend(texture, unknown, OFFSET)[1] is None  # max_parts 0: as the voice likes


def test_a_chord_waiting_for_the_motifs_top_may_still_take_it():
    """The parts' cap waits while the motif's top note is due (the top line is what is heard): a
    chordal answer whose held notes filled the parts lost the call's top line (tests/test_engine's
    motif test: 0.84 of its steps in the call's direction, 0.78 without this)."""
    motif = Motif([0, 12], [12, 12], [72, 74], span=2, strength=5.0, sizes=[3, 3])
    held = [(3.0, 48), (3.0, 52)]
    waiting = make_answer(sampled=3, onsets=1, beats=2.0, max_voices=3, max_parts=3, motif=motif, onset_pitches={55}, sounding=held + [(3.0, 55)])
    assert bend(texture, waiting, OFFSET)[1] is None  # 72 not struck yet: it may join
    reached = make_answer(sampled=3, onsets=1, beats=2.0, max_voices=3, max_parts=3, motif=motif, onset_pitches={72}, sounding=held + [(3.0, 72)])
    _, mask = bend(texture, reached, OFFSET)
    assert mask is not None and not mask[0]
