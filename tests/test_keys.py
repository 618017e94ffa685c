"""The key of a short call: ``estimate_phrase_key`` on phrases whose key is known."""

from __future__ import annotations

import numpy as np
import pytest

from improv.music.keys import PhraseKeyWeights, estimate_key, estimate_phrase_key, key_name, phrase_key_scores

PROFILE_ONLY = PhraseKeyWeights(0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def phrase(pitches, durations=None):
    """(pitches, onsets, durations) of a line, each note after the one before (beats)."""
    d = np.array(durations or [1.0] * len(pitches), dtype=float)
    return np.array(pitches), np.concatenate([[0.0], np.cumsum(d)[:-1]]), d


def new(pitches, durations=None, **kw) -> str:
    return key_name(*estimate_phrase_key(*phrase(pitches, durations), **kw))


def old(pitches, durations=None) -> str:
    p, _, d = phrase(pitches, durations)
    return key_name(*estimate_key(np.bincount(p % 12, weights=d, minlength=12)))


def test_the_issues_call_is_c_major_not_e_minor():
    call = ([60, 62, 64, 65, 67, 64], [1, 1, 1, 1, 1, 2])  # C D E F G E, the last E held
    assert old(*call) == "E minor"  # today's estimate, as the issue found it
    assert new(*call) == "C major"


@pytest.mark.parametrize(
    "pitches, key",
    [
        ([69, 71, 72, 74, 76, 72, 71, 68, 69], "A minor"),  # with its leading tone
        ([67, 71, 74, 72, 71, 69, 67], "G major"),
        ([60, 64, 69, 67, 65, 64, 62, 60], "C major"),
        ([62, 65, 69, 67, 65, 64, 61, 62], "D minor"),
    ],
)
def test_plain_phrases(pitches, key):
    assert new(pitches) == key


def test_first_and_last_notes_decide_between_relative_keys():
    tune = [72, 71, 69, 71, 72, 74, 76, 72]  # white notes from C to C: C major or A minor?
    assert new(tune, weights=PROFILE_ONLY) == "A minor"  # the pitch classes alone lean to A minor
    assert new(tune) == "C major"  # begun and ended on C


def test_the_last_and_the_first_note_weigh_as_told():
    tune = [69, 71, 72, 74, 76, 74, 72, 71, 72]  # from A to C
    p, t, d = phrase(tune)
    last = PhraseKeyWeights(0.0, 0.0, 2.0, 0.5, 0.0, 0.0, 0.0, 0.0)
    first = PhraseKeyWeights(0.0, 0.0, 2.0, 0.0, 0.0, 0.5, 0.0, 0.0)
    assert key_name(*estimate_phrase_key(p, t, d, weights=last)) == "C major"
    assert key_name(*estimate_phrase_key(p, t, d, weights=first)) == "A minor"


def test_transposed_phrases_move_the_key_with_them():
    pitches, onsets, durations = phrase([60, 62, 64, 65, 67, 64, 62, 59, 60], [1, 0.5, 0.5, 1, 1, 0.5, 0.5, 1, 2])
    for shift in range(-6, 6):
        tonic, minor = estimate_phrase_key(pitches + shift, onsets, durations)
        assert (tonic, minor) == (shift % 12, False)


def test_seconds_or_beats_and_where_the_call_starts():
    pitches, onsets, durations = phrase([69, 71, 72, 74, 76, 72, 71, 68, 69], [0.5, 0.5, 1, 1, 0.5, 0.5, 1, 1, 2])
    beats = estimate_phrase_key(pitches, onsets, durations)
    assert estimate_phrase_key(pitches, onsets * 0.6, durations * 0.6, beat=0.6) == beats  # 100 bpm, in seconds
    # Scores with accents: on the beat grid from the first onset, in any unit.
    accented = PhraseKeyWeights(beat_accent=1.0, bar_accent=1.0)
    in_beats = phrase_key_scores(pitches, onsets, durations, bar=4.0, weights=accented)
    assert np.allclose(phrase_key_scores(pitches, onsets * 0.6, durations * 0.6, beat=0.6, bar=2.4, weights=accented), in_beats)
    assert not np.allclose(phrase_key_scores(pitches, onsets, durations, bar=4.0), in_beats)  # the accents count


def test_accents_weigh_notes_on_beats_and_downbeats():
    # Eighths: A on each downbeat, E and C on the other beats, C, G off them: flat, C major; with
    # the downbeats stressed, A minor.
    pitches = [69, 72, 64, 67, 64, 72, 64, 67] * 2
    onsets = np.arange(16) * 0.5
    durations = np.full(16, 0.5)
    flat = PhraseKeyWeights(0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    heavy = PhraseKeyWeights(1.0, 3.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert key_name(*estimate_phrase_key(pitches, onsets, durations, bar=4.0, weights=flat)) == "C major"
    assert key_name(*estimate_phrase_key(pitches, onsets, durations, bar=4.0, weights=heavy)) == "A minor"


def test_degenerate_input():
    assert estimate_phrase_key([], [], []) == (0, False)
    assert estimate_phrase_key([64], [0.0], [1.0]) == (4, False)  # one note: its own major key
    assert estimate_phrase_key([60, 60, 60], [0, 1, 2], [1, 1, 1]) == (0, False)
