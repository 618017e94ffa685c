"""Tokenizer: golden table in both directions, whole-piece round trip, order, transposition."""

from __future__ import annotations

import numpy as np
import pytest

from improv.music.notes import Note
from improv.music.tokenizer import BOS, EOS, Tokenizer, time_grid
from improv.settings.sections import TokenizerSettings

TOK = Tokenizer()

# The golden table, through the functions the pipeline uses (``encode`` and ``decode``): each
# note follows a reference note (pitch 60 at beat 0, a quarter note, velocity 73) in a piece of
# two, and must encode to its row; the row, after the reference's, must decode to the note again.
REFERENCE = Note(60, 0.0, 1.0, 73)
REFERENCE_ROW = (60, 0, 12, 4)
GOLDEN = [
    (Note(64, 0.0, 1.0, 73), (64, 0, 12, 4)),  # a chord with the reference: offset 0
    (Note(0, 0.25, 0.25, 9), (0, 3, 3, 0)),  # sixteenth offset and length, lowest pitch and velocity
    (Note(127, 1 / 3, 1 / 3, 120), (127, 4, 4, 7)),  # triplet eighth
    (Note(64, 1 / 6, 1 / 12, 57), (64, 2, 1, 3)),  # sixteenth triplet, the shortest duration
    (Note(72, 1.5, 0.75, 89), (72, 18, 9, 5)),  # dotted quarter offset, dotted eighth length
    (Note(48, 2.0, 2.0, 105), (48, 24, 24, 6)),  # last fine step: a half note
    (Note(50, 2.25, 7 / 3, 41), (50, 25, 26, 2)),  # beyond 2 beats: quarters and thirds only
    (Note(55, 4.0, 6.25, 25), (55, 36, 49, 1)),  # a bar; a sixteenth after a bar and a half
    (Note(57, 8.0, 16.0, 73), (57, 60, 76, 4)),  # two bars; the longest duration
    (Note(59, 16.0, 9.5, 73), (59, 76, 63, 4)),  # the longest offset; half beats beyond 2 bars
]


@pytest.mark.parametrize("note, row", GOLDEN)
def test_golden_encode(note, row):
    rows = TOK.encode([REFERENCE, note])
    assert rows.tolist() == [[BOS, 0, 0, 0], list(REFERENCE_ROW), list(row), [EOS, 0, 0, 0]]


@pytest.mark.parametrize("note, row", GOLDEN)
def test_golden_decode(note, row):
    first, second = TOK.decode(np.array([(BOS, 0, 0, 0), REFERENCE_ROW, row, (EOS, 0, 0, 0)], dtype=np.uint8))
    assert first == REFERENCE
    assert (second.pitch, second.velocity) == (note.pitch, note.velocity)
    assert second.start == pytest.approx(note.start) and second.duration == pytest.approx(note.duration)


@pytest.mark.parametrize(
    "note, row",
    [
        (Note(62, 0.04, 0.0, 1), (62, 0, 1, 0)),  # jitter snaps to the chord; zero length -> shortest
        (Note(60, 0.125, 0.49, 127), (60, 1, 6, 7)),  # a 32nd: tie goes to the shorter class
        (Note(60, 2.1, 100.0, 64), (60, 24, 76, 3)),  # very long duration capped
        (Note(60, 8.3, 1.0, 64), (60, 61, 12, 3)),  # beyond 2 bars: half beats (8.5)
        (Note(60, 40.0, 1.0, 200), (60, 76, 12, 7)),  # long gap capped; velocity clamped
        (Note(130, 1.0, 1.0, 64), (118, 12, 12, 3)),  # out-of-range pitch folded by octaves
        (Note(-5, 1.0, 1.0, 0), (7, 12, 12, 0)),
    ],
)
def test_off_grid_values_quantise_to_nearest(note, row):
    assert TOK.encode([REFERENCE, note], bos=False, eos=False)[1].tolist() == list(row)


def test_specials_are_skipped_and_vocab_is_fixed():
    assert TOK.decode(np.array([(BOS, 0, 0, 0), (EOS, 0, 0, 0)], dtype=np.uint8)) == []
    assert TOK.encode([]).tolist() == [[BOS, 0, 0, 0], [EOS, 0, 0, 0]]
    assert TOK.sizes == (130, 77, 77, 8)


def test_time_grid_holds_sixteenths_and_triplets():
    steps = set(time_grid(12, 16.0))
    for beats in [0.25, 0.5, 0.75, 1 / 3, 2 / 3, 1 / 6, 1.25, 1 + 2 / 3, 2.75, 3 + 1 / 3, 4, 6.25, 7 + 2 / 3, 12.5, 16]:
        assert round(beats * 12) in steps
    assert max(steps) == 16 * 12 and len(steps) == len(set(steps))
    assert sorted(steps) == time_grid(12, 16.0)
    assert max(time_grid(24, 32.0)) == 32 * 24


def piece():
    return [
        Note(60, 0.0, 1.0, 80),
        Note(64, 0.0, 1.0, 80),
        Note(67, 0.0, 0.5, 90),
        Note(72, 0.5, 0.5, 100),
        Note(71, 1.0, 1 / 3, 60),
        Note(69, 4 / 3, 1 / 3, 60),
        Note(67, 5 / 3, 1 / 3, 60),
        Note(48, 2.0, 4.0, 40),
        Note(79, 6.25, 0.25, 110),
    ]


def test_piece_round_trip_exact_on_grid():
    rows = TOK.encode(piece())
    assert rows.dtype == np.uint8 and rows.shape == (len(piece()) + 2, 4)
    assert rows[0].tolist() == [BOS, 0, 0, 0] and rows[-1].tolist() == [EOS, 0, 0, 0]
    decoded = TOK.decode(rows)
    assert [(n.pitch, round(n.start * 12), round(n.duration * 12)) for n in decoded] == [
        (n.pitch, round(n.start * 12), round(n.duration * 12)) for n in piece()
    ]


def test_simultaneous_notes_in_deterministic_order():
    shuffled = list(reversed(piece()))
    assert TOK.encode(shuffled).tolist() == TOK.encode(piece()).tolist()
    chord = TOK.encode(piece())[1:4, 0].tolist()
    assert chord == [60, 64, 67]  # lowest first, voicing kept


def test_unison_notes_merge():
    rows = TOK.encode([Note(60, 0, 1, 50), Note(60, 0, 2, 90)], bos=False, eos=False)
    assert rows.tolist() == [[60, 0, 24, 5]]


def test_rounding_never_accumulates():
    # 200 notes a 32nd apart (off the grid): each onset stays within half a step of the source.
    notes = [Note(60 + i % 12, i * 0.125, 0.125, 64) for i in range(200)]
    decoded = TOK.decode(TOK.encode(notes))
    assert max(abs(d.start - n.start) for d, n in zip(decoded, notes)) <= 0.5 / 12 + 1e-9


def test_long_gap_shortened_and_timing_restarts():
    notes = [Note(60, 10.0, 1, 64), Note(62, 50.5, 1, 64), Note(64, 51.0, 1, 64)]
    decoded = TOK.decode(TOK.encode(notes))
    assert [d.start for d in decoded] == [0.0, 16.0, 16.5]  # leading silence dropped, gap capped
    assert TOK.grid_onsets(notes) == [(0, 60), (192, 62), (198, 64)]


def test_grid_onsets_match_decoded_onsets():
    rng = np.random.default_rng(1)
    notes = [Note(int(rng.integers(30, 90)), float(rng.integers(0, 400)) / 8, 0.5, 64) for _ in range(300)]
    decoded = TOK.decode(TOK.encode(notes))
    expected = TOK.grid_onsets(notes)
    got = [(round(d.start * 12), d.pitch) for d in decoded]
    assert len(set(got) & set(expected)) / len(set(expected)) > 0.97


def test_transpose_is_a_pitch_shift_with_octave_folding():
    rows = TOK.encode([Note(0, 0, 1, 64), Note(60, 1, 1, 64), Note(127, 2, 1, 64)])
    up = TOK.transpose(rows, 5)
    assert up[1:-1, 0].tolist() == [5, 65, 120]  # 132 folds down an octave
    down = TOK.transpose(rows, -5)
    assert down[1:-1, 0].tolist() == [7, 55, 122]
    assert up[0, 0] == BOS and up[-1, 0] == EOS
    assert (up[:, 1:] == rows[:, 1:]).all()


def test_to_dict_round_trip_and_mismatch():
    data = TOK.to_dict()
    assert Tokenizer.from_dict(data) == TOK
    other = Tokenizer(TokenizerSettings(velocity_bins=4))
    assert other.sizes[3] == 4 and other != TOK
    data["time_steps"] = data["time_steps"][:-1]
    from improv.errors import CheckpointError

    with pytest.raises(CheckpointError, match="vocabulary differs"):
        Tokenizer.from_dict(data)


def test_chord_spread_over_ticks_stays_one_chord_lowest_first():
    # A chord whose notes the source spread over a few ticks, highest first.
    notes = [Note(67, 2.0, 1, 64), Note(64, 2.004, 1, 64), Note(60, 2.008, 1, 64)]
    rows = TOK.encode(notes, bos=False, eos=False)
    assert rows[:, 0].tolist() == [60, 64, 67] and rows[:, 1].tolist() == [0, 0, 0]


def test_doubling_on_one_grid_step_is_one_note():
    # The same pitch struck twice a tick apart (two tracks doubling): one note, longer and louder.
    notes = [Note(60, 0.0, 1.0, 50), Note(60, 0.002, 2.0, 90), Note(62, 1.0, 1.0, 64)]
    rows = TOK.encode(notes, bos=False, eos=False)
    assert rows.tolist() == [[60, 0, 24, 5], [62, 12, 12, 3]]
    assert TOK.grid_onsets(notes) == [(0, 60), (12, 62)]


def test_chord_after_long_gap_stays_together():
    # The onset after a > 2 bar gap is rounded coarsely; the chord's other notes must not drift.
    notes = [Note(40, 0.0, 1, 64), Note(60, 8.25, 1, 64), Note(64, 8.25, 1, 64), Note(67, 8.5, 1, 64)]
    rows = TOK.encode(notes, bos=False, eos=False)
    # 8.25 beats rounds (tie, to the shorter) to 8.0; the chord stays at 8.0; the next onset recovers.
    assert rows[1:, 1].tolist() == [60, 0, 6]
    decoded = TOK.decode(rows)
    assert [d.start for d in decoded] == [0.0, 8.0, 8.0, 8.5]


def test_recall_reference_follows_encodes_gap_rule():
    # An onset rounded coarsely (25/12 beats -> 2.0) and then a long gap: the gap is cut by what
    # encode cut, so only the coarsely rounded onset counts as moved, not everything after it.
    notes = [Note(60, 0.0, 1, 64), Note(62, 25 / 12, 1, 64), Note(64, 25 / 12 + 16.5, 1, 64)] + [
        Note(65 + i, 25 / 12 + 16.5 + i, 1, 64) for i in range(1, 11)
    ]
    rows = TOK.encode(notes)
    got = {(round(d.start * 12), d.pitch) for d in TOK.decode(rows)}
    expected = TOK.grid_onsets(notes)
    assert [e for e in expected if e not in got] == [(25, 62)]  # 12 of 13 survive (before: 1 of 13)


def _random_piece(rng: np.random.Generator) -> list[Note]:
    """Onsets on and off the grid, chords, long and coarse gaps, doublings: what real files hold."""
    t, notes = 0.0, []
    for _ in range(int(rng.integers(1, 40))):
        t += float(rng.choice([0, 0, 0.01, 0.25, 1 / 3, 0.5, 1, 2.1, 2.6, 3.37, 5.5, 9.1, 17.3, 20.0]))
        notes.append(Note(int(rng.integers(30, 90)), t, float(rng.choice([0.1, 0.5, 1, 3.3, 20])), int(rng.integers(1, 128))))
    return notes


def test_encode_is_idempotent_on_random_pieces():
    rng = np.random.default_rng(7)
    for _ in range(2000):
        rows = TOK.encode(_random_piece(rng))
        assert np.array_equal(TOK.encode(TOK.decode(rows)), rows)


def test_a_coarse_offset_that_lands_on_the_next_onset_makes_one_chord_lowest_first():
    # 35 steps (2 11/12 beats) after the first note is off the coarse grid (quarters and thirds of
    # a beat beyond 2 beats): it rounds up to 3 beats, onto the next note's onset, which then
    # sounds with it: one chord, lowest first.
    notes = [Note(60, 0.0, 1.0, 80), Note(72, 35 / 12, 1.0, 80), Note(50, 3.0, 1.0, 90)]
    rows = TOK.encode(notes, bos=False, eos=False)
    assert rows[1:, 0].tolist() == [50, 72] and rows[1:, 1].tolist()[1] == 0
    assert np.array_equal(TOK.encode(TOK.decode(rows), bos=False, eos=False), rows)
