"""``eval --duet``'s passing share: onsets that strike one note while notes struck before still
sound (``evaluation.response.passing_share``)."""

from __future__ import annotations

from improv.evaluation.response import Turn, passing_share, summarize
from improv.music.notes import Note, note_array
from tests.test_duet import SPB, line


def test_a_part_moving_alone_under_held_notes_is_passing():
    blocks = note_array([Note(p, k, 1, 80) for k in range(4) for p in (48, 55, 64, 72)])
    assert passing_share(blocks, SPB) == 0.0  # every part struck together
    assert passing_share(line([60, 62, 64]), SPB) == 0.0  # a line: nothing held
    # Beat 0: four parts; the alto moves on at 0.5 under the three held to beat 1; beat 1: four again.
    chorale = note_array([Note(48, 0, 1, 80), Note(55, 0, 1, 80), Note(64, 0, 0.5, 80), Note(72, 0, 1, 80), Note(65, 0.5, 0.5, 80)] + [Note(p, 1, 1, 80) for p in (50, 55, 67, 71)])
    assert passing_share(chorale, SPB) == 1 / 3
    two = note_array([Note(48, 0, 2, 80), Note(60, 1, 1, 80), Note(64, 1, 1, 80)])  # two struck over a held bass: a chord
    assert passing_share(two, SPB) == 0.0
    assert passing_share(note_array([]), SPB) is None


def test_summarize_gives_the_answers_and_the_calls_share():
    chorale = note_array([Note(48, 0, 2, 80), Note(60, 0, 1, 80), Note(62, 1, 1, 80)])  # half of its onsets pass
    out = summarize([Turn(line([60, 62, 64, 65]), chorale, 1.0, 4.0, (0, False))], SPB)
    assert out["passing"] == 0.5 and out["call_passing"] == 0.0
