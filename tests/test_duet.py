"""`improv eval --duet`: the call/answer figures on hand-made phrases, the phrase-pair cutter, the
answers' likelihoods against hand computations, the shuffled control, and the command's JSON."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from improv.cli.main import main
from improv.evaluation.answers import answer_nll, free_answer, markov_answer, markov_answer_nll
from improv.evaluation.baselines import MarkovModel
from improv.evaluation.duet import SYSTEMS, evaluate_duet, spread
from improv.evaluation.phrases import cut_pairs, estimate_pickup, longest_rest, metric_beat, piece_notes, shuffled_partners
from improv.evaluation.response import (
    FIGURES,
    Turn,
    ends_on_cadence,
    iois,
    motif_uptake,
    notes_per_onset,
    register_gap,
    rhythm_uptake,
    summarize,
    top_line,
    uptake,
)
from improv.model.sampling import SamplingParams
from improv.model.step_model import HEAD_ORDER, random_step_model
from improv.music.notes import Note, note_array
from improv.music.tokenizer import BOS, DURATION, OFFSET, Tokenizer
from improv.settings.serve_section import ServeSettings

TOK = Tokenizer()
SPB = TOK.steps_per_beat
C_MAJOR, G_MAJOR, A_MINOR = (0, False), (7, False), (9, True)


def line(pitches, durations=None, start: float = 0.0) -> np.ndarray:
    """A single line: each note starts when the one before ends (durations in beats, default 1)."""
    durations = durations or [1.0] * len(pitches)
    notes, t = [], start
    for p, d in zip(pitches, durations):
        notes.append(Note(p, t, d, 80))
        t += d
    return note_array(notes)


# ---- the figures ----------------------------------------------------------------------------------


def test_rhythm_uptake_counts_the_answers_ioi_trigrams_found_in_the_call():
    call = line([60] * 7, [1, 1, 2, 1, 1, 2, 1])  # IOIs 1 1 2 1 1 2: 3-grams (1,1,2) (1,2,1) (2,1,1) (1,1,2)
    assert iois(call, SPB).tolist() == [12, 12, 24, 12, 12, 24]
    assert rhythm_uptake(call, line([67, 65, 64, 62, 60], [1, 1, 2, 1, 1]), SPB) == 1.0  # (1,1,2) (1,2,1)
    assert rhythm_uptake(call, line([60] * 5, [0.5] * 5), SPB) == 0.0
    assert rhythm_uptake(call, line([60] * 6, [1, 1, 2, 0.5, 0.5, 1]), SPB) == pytest.approx(1 / 3)  # (1,1,2) of three
    assert rhythm_uptake(call, line([60] * 3), SPB) is None  # two IOIs: no 3-gram
    # A chord is one onset; starts a hair off the grid (a played answer) are on it.
    chords = note_array([Note(60, 0, 1, 80), Note(64, 0.001, 1, 80), Note(62, 1, 1, 80), Note(65, 2.0004, 2, 80), Note(60, 4, 1, 80)])
    assert iois(chords, SPB).tolist() == [12, 12, 24]


def test_motif_uptake_is_transposition_free_on_the_top_line():
    call = line([60, 62, 64, 65, 67, 64])  # C D E F G E: intervals 2 2 1 2 -3
    assert motif_uptake(call, line([67, 69, 71, 72]), SPB) == 1.0  # G A B C: 2 2 1, a fifth up
    assert motif_uptake(call, line([60, 59, 57, 55]), SPB) == 0.0
    # The top line of chords is what is compared: a bass under the motif changes nothing.
    chords = note_array([n for k, p in enumerate([67, 69, 71, 72]) for n in (Note(p, k, 1, 80), Note(p - 19, k, 1, 80))])
    assert top_line(chords, SPB).tolist() == [67, 69, 71, 72]
    assert motif_uptake(call, chords, SPB) == 1.0
    # The skyline: an alto moving under the soprano's held half note is not the melody.
    chorale = note_array([Note(72, 0, 2, 80), Note(64, 0, 1, 80), Note(65, 1, 1, 80), Note(74, 2, 1, 80), Note(67, 2, 1, 80), Note(76, 3, 1, 80), Note(60, 3, 0.5, 80), Note(62, 3.5, 0.5, 80)])
    assert top_line(chorale, SPB).tolist() == [72, 74, 76]
    assert top_line(note_array([Note(60, 0, 1, 80), Note(67, 1, 1, 80), Note(62, 2, 1, 80)]), SPB).tolist() == [60, 67, 62]
    assert uptake([1, 2, 3], [1, 2, 3, 1, 2, 3, 9]) == pytest.approx(2 / 5)  # each occurrence counts


def test_register_polyphony_and_cadence():
    assert register_gap(line([60, 62, 64]), line([72, 74, 76, 77])) == pytest.approx(75 - 62)
    chorale = note_array([Note(p, k, 1, 80) for k in range(4) for p in (48, 55, 64, 72)])
    assert notes_per_onset(chorale, SPB) == 4.0 and notes_per_onset(line([60, 62]), SPB) == 1.0
    assert notes_per_onset(note_array([]), SPB) is None
    # Ends on a beat, on a tonic-triad tone of the call's key.
    assert ends_on_cadence(line([62, 59, 60]), C_MAJOR, 1.0, SPB)
    assert ends_on_cadence(line([62, 59, 64]), C_MAJOR, 1.0, SPB) and ends_on_cadence(line([62, 59, 67]), C_MAJOR, 1.0, SPB)
    assert not ends_on_cadence(line([62, 59, 62]), C_MAJOR, 1.0, SPB)  # the second degree
    assert not ends_on_cadence(line([62, 59, 60], [1, 0.5, 1]), C_MAJOR, 1.0, SPB)  # off the beat
    assert ends_on_cadence(line([64, 62, 60], [1, 0.5, 1]), C_MAJOR, 0.5, SPB)  # ... on the half beat grid
    assert ends_on_cadence(line([64, 62, 69], [1.5, 1.5, 1]), A_MINOR, 1.5, SPB)  # 6/8: the dotted quarter
    assert not ends_on_cadence(line([64, 62, 69], [1, 1, 1]), A_MINOR, 1.5, SPB)
    final_chord = [Note(60, 0, 1, 80), Note(55, 1, 1, 80), Note(64, 1, 1, 80), Note(72, 1, 1, 80)]
    assert ends_on_cadence(note_array(final_chord), C_MAJOR, 1.0, SPB)
    assert not ends_on_cadence(note_array([*final_chord, Note(62, 1, 1, 80)]), C_MAJOR, 1.0, SPB)


def test_summarize_over_answers():
    call = line([60, 62, 64, 65, 67, 65, 64, 62, 60], [1, 1, 1, 1, 2, 1, 1, 1, 3])  # C major
    same = line([60, 62, 64, 65, 67, 64, 60], [1, 1, 1, 1, 2, 1, 2])
    other_key = line([66, 67, 69, 71, 74, 66, 74], [1, 1, 1, 1, 2, 1, 2])  # G major, ending on D
    turns = [Turn(call, same, 1.0, 4.0), Turn(call, other_key, 1.0, 4.0), Turn(call, note_array([]), 1.0, 4.0)]
    s = summarize(turns, SPB)
    assert set(FIGURES) <= set(s)
    assert s["key_agreement"] == pytest.approx(1 / 3) and s["empty_answers"] == 1 and s["answers"] == 3
    assert s["cadence_rate"] == pytest.approx(1 / 3)  # D is no tone of C major's tonic triad
    assert s["register_gap"] == pytest.approx(np.median([64 - 64, 69 - 64]))  # medians: call 64, answers 64 and 69
    assert s["rhythm_uptake"] == pytest.approx(np.mean([rhythm_uptake(call, same, SPB), rhythm_uptake(call, other_key, SPB)]))
    assert s["polyphony"] == 1.0 and s["call_polyphony"] == 1.0


def test_echo_at_pitch_and_transposed():
    call = line([60, 62, 64, 65, 67])
    at_pitch = line([60, 62, 64, 65, 60])
    a_fifth_up = line([67, 69, 71, 72, 67])  # the call's first four intervals, moved: a transposed echo only
    three_then_away = line([67, 69, 71, 69, 67])  # the head only: neither
    s = summarize([Turn(call, a, 1.0, 4.0) for a in (at_pitch, a_fifth_up, three_then_away, note_array([]))], SPB)
    assert s["echo_rate"] == pytest.approx(1 / 4) and s["transposed_echo_rate"] == pytest.approx(2 / 4)


# ---- phrase pairs ------------------------------------------------------------------------------------


def piece_rows(notes: list[Note]) -> np.ndarray:
    return TOK.encode(notes)


def test_pairs_are_cut_at_bar_lines_in_three_four_with_a_pickup():
    # 3/4, a one-beat pickup, then bars of a half note and a quarter (the long note on the downbeat).
    notes = [Note(60, 0, 1, 80)]
    for bar in range(8):
        at = 1 + 3 * bar
        notes += [Note(62 + bar, at, 2, 80), Note(64 + bar, at + 2, 0.5, 80), Note(65 + bar, at + 2.5, 0.5, 80)]
    rows = piece_rows(notes)
    assert estimate_pickup(piece_notes(rows, TOK)[0], 3.0) == 1.0
    pairs = cut_pairs("p", rows, TOK, (3, 4), bars=2)
    # Bar 0 is the pickup's bar (from -2 beats): call = [-2, 4) holds the pickup and bar 1, the answer [4, 10).
    assert [p.index for p in pairs] == [0, 1]
    first = pairs[0]
    assert first.call["start"].tolist() == [2, 3, 5, 5.5]
    assert first.call["pitch"].tolist() == [60, 62, 64, 65]
    assert first.answer["start"].tolist() == [0, 2, 2.5, 3, 5, 5.5]
    assert first.answer["pitch"].tolist() == [63, 65, 66, 64, 66, 67]
    assert first.span == 6.0 and first.bar == 3.0 and first.beat == 1.0
    # Rows: the call's first as after BOS (offset 0), the answer's first offset from the call's last event.
    assert first.call_rows[0, OFFSET] == 0 and len(first.call_rows) == 4
    assert TOK.time_values[first.answer_rows[0, OFFSET]] == 0.5
    # The pair after it starts 12 beats later, at the fourth bar line (bar 3, from 10 beats).
    assert pairs[1].call["pitch"].tolist()[:3] == [65, 67, 68] and pairs[1].call["start"].min() == 0.0
    assert pairs[1].call_rows[0, OFFSET] == 0  # heard at a session's start, not 0.5 beats after the note before


def test_six_eight_bars_and_clipped_calls():
    # 6/8: bars of 3 quarter beats, beat = a dotted quarter; no pickup.
    notes = [Note(60 + (k % 5), 0.5 * k, 0.5, 80) for k in range(6 * 8)]
    notes.append(Note(72, 5.0, 4.0, 80))  # held over the call's end (6 beats): cut there
    pairs = cut_pairs("p", piece_rows(notes), TOK, (6, 8), bars=2, pickup=0.0)
    assert metric_beat((6, 8)) == 1.5 and metric_beat((3, 4)) == 1.0 and metric_beat((3, 2)) == 2.0 and metric_beat(None) == 1.0
    assert len(pairs) == 2 and pairs[0].span == 6.0 and pairs[0].beat == 1.5
    call = pairs[0].call
    held = call[call["pitch"] == 72]
    assert held["start"].tolist() == [5.0] and held["duration"].tolist() == [1.0]
    assert TOK.time_values[pairs[0].call_rows[call["pitch"] == 72][0, DURATION]] == 1.0
    assert pairs[0].answer["start"].min() == 0.0 and pairs[0].answer["start"].max() == 5.5


def test_pairs_with_too_few_onsets_are_skipped():
    notes = [Note(60, k, 1, 80) for k in range(8)] + [Note(62, 8, 4, 80), Note(64, 12, 4, 80)]  # bars 3-4: 2 onsets
    assert cut_pairs("p", piece_rows(notes), TOK, (4, 4), bars=2, pickup=0.0) == []
    assert len(cut_pairs("p", piece_rows(notes), TOK, (4, 4), bars=1, pickup=0.0)) == 1


def test_longest_rest():
    assert longest_rest(line([60, 62, 64])) == 0.0
    assert longest_rest(note_array([Note(60, 0, 1, 80), Note(62, 2.5, 1, 80), Note(48, 0, 2, 80)])) == 0.5


def test_the_shuffled_control_never_pairs_a_call_with_its_own_piece():
    rng = np.random.default_rng(0)
    for trial in range(200):
        pieces = [f"p{int(x)}" for x in rng.integers(0, int(rng.integers(2, 8)), int(rng.integers(2, 30)))]
        partners = shuffled_partners(pieces, seed=trial)
        assert len(partners) == len(pieces)
        if len(set(pieces)) > 1:
            assert all(j is not None and j != i and pieces[j] != pieces[i] for i, j in enumerate(partners))
    assert shuffled_partners(["a", "a"], 0) == [None, None]
    partners = shuffled_partners(["a", "a", "b", "b", "c", "c"], 3)
    assert sorted(partners) == list(range(6))  # balanced pieces: every real answer used once
    pieces = ["a"] * 3 + ["b"] * 4 + ["c"] * 2 + ["d"] * 5 + ["e"] * 3
    rounds = [shuffled_partners(pieces, 1, k) for k in range(4)]
    for i in range(len(pieces)):
        mine = [r[i] for r in rounds]
        assert len(set(mine)) == 4 and all(pieces[j] != pieces[i] for j in mine)  # four other answers


def test_spread_keeps_the_ends():
    assert spread(list(range(10)), 3) == [0, 4, 9] and spread([1, 2], 5) == [1, 2]


# ---- likelihoods -------------------------------------------------------------------------------------


def log_softmax_nll(logits: np.ndarray, target: int) -> float:
    z = logits.astype(np.float64)
    return float(np.log(np.exp(z - z.max()).sum()) + z.max() - z[target])


def test_primed_and_unprimed_nll_are_the_hand_computed_sums():
    model = random_step_model(hidden_size=8, embed_dim=4, seed=3)
    rng = np.random.default_rng(0)
    call = np.stack([rng.integers(55, 70, 5), [0, 6, 6, 12, 3], rng.integers(1, 12, 5), rng.integers(0, 8, 5)], axis=1).astype(np.uint8)
    answer = np.stack([rng.integers(55, 70, 4), [6, 0, 12, 6], rng.integers(1, 12, 4), rng.integers(0, 8, 4)], axis=1).astype(np.uint8)
    primed, fresh = answer_nll(model, call, answer)

    def by_hand(prefix, rows):
        h = model.initial_state()
        for r in prefix:
            h = model.step(h, r)
        total = np.zeros(4)
        for r in rows:
            logits = model.event_logits(h, r)
            total += [log_softmax_nll(logits[f], int(r[f])) for f in range(4)]
            h = model.step(h, r)
        return total

    bos = TOK.special(BOS)
    assert np.allclose(primed, by_hand([bos, *call], answer))
    unprimed_rows = answer.copy()
    unprimed_rows[0, OFFSET] = 0  # a piece's first event
    assert np.allclose(fresh, by_hand([bos], unprimed_rows))
    assert not np.allclose(primed, fresh)


def test_markov_answer_nll_is_the_sum_of_its_field_probabilities():
    rng = np.random.default_rng(1)
    pieces = [np.concatenate([[TOK.special(BOS)], np.stack([rng.integers(60, 64, 30), rng.integers(0, 3, 30), rng.integers(1, 4, 30), rng.integers(0, 2, 30)], axis=1)]).astype(np.uint8) for _ in range(10)]
    markov = MarkovModel(2, TOK.sizes).fit(pieces)
    call, answer = pieces[0][1:8], pieces[1][1:6]
    history = np.concatenate([[TOK.special(BOS)], call])
    expected = np.zeros(4)
    for row in answer:
        for field in HEAD_ORDER:
            expected[field] -= np.log(markov.field_probs(history, row, field)[row[field]])
        history = np.concatenate([history, row[None]])
    assert np.allclose(markov_answer_nll(markov, TOK, call, answer), expected)


def test_free_and_markov_answers_last_one_span():
    model = random_step_model(hidden_size=8, embed_dim=4, seed=5)
    rng = np.random.default_rng(2)
    notes = free_answer(model, rng, SamplingParams(), span=8.0)
    assert len(notes) and notes["start"].min() == 0.0 and notes["start"].max() < 8.0
    pieces = [TOK.encode(line([60, 62, 64, 65, 67] * 6, [0.5] * 30))]
    markov = MarkovModel(2, TOK.sizes).fit(pieces)
    answer = markov_answer(markov, TOK, pieces[0][1:9], rng, SamplingParams(), span=4.0)
    assert answer["start"].min() == 0.0 and answer["start"].max() < 4.0
    assert set(answer["pitch"].tolist()) <= {60, 62, 64, 65, 67}  # it continues what it learned


# ---- the whole evaluation ------------------------------------------------------------------------------


def test_evaluate_duet_layout_and_the_engine_settings_pass_through():
    model = random_step_model(hidden_size=16, embed_dim=8, seed=7)
    rng = np.random.default_rng(3)
    pieces = []
    for i in range(3):
        pitches = [int(p) for p in 60 + rng.choice([0, 2, 4, 5, 7, 9, 11], 48)]
        pieces.append(TOK.encode(line(pitches, [float(d) for d in rng.choice([0.5, 1.0], 48)])))
    pairs = [p for i, rows in enumerate(pieces) for p in cut_pairs(f"piece{i}", rows, TOK, (4, 4), 2, 120.0, pickup=0.0)]
    markov = MarkovModel(2, TOK.sizes).fit(pieces)
    result = evaluate_duet(model, pairs, markov, ServeSettings(), SamplingParams(), answers=2, seed=0)
    assert result["pairs"] == len(pairs) > 2
    for name in SYSTEMS:
        assert set(FIGURES) <= set(result[name])
    assert result["improv"]["answers"] == result["unprimed"]["answers"] == result["markov"]["answers"] == 2 * len(pairs)
    assert result["real"]["answers"] == len(pairs) and result["shuffled"]["answers"] == 2 * len(pairs)
    assert result["improv"]["empty_answers"] == 0 and result["improv"]["answer_notes"] > 2
    assert result["real"]["rhythm_uptake"] is not None
    for key in ("answer_nll_primed", "answer_nll_unprimed", "markov_answer_nll"):
        assert result[key] == pytest.approx(sum(result[f"{key}_{f}"] for f in ("pitch", "offset", "duration", "velocity")))
    # The engine plays with the settings given: a single voice at most and no key changes what it answers.
    loud = evaluate_duet(model, pairs, markov, ServeSettings(keep_key=False, register="free"), SamplingParams(), answers=2, seed=0)
    assert loud["improv"] != result["improv"] and loud["real"] == result["real"]
    # The quality bar on the answers: collapse always; copying from the training pieces when given
    # them (here the pieces the real answers come from: each real answer is found in them).
    assert result["real"]["longest_copy"] is None and 0.0 <= result["improv"]["collapse_rate"] < 0.02
    from improv.evaluation.metrics import note_codes

    copied = evaluate_duet(model, pairs, markov, ServeSettings(), SamplingParams(), answers=1, seed=0, train_codes=[note_codes(p, TOK) for p in pieces])
    # (all but its first event, whose offset counts from the answer's start, not the note before)
    assert copied["real"]["longest_copy"] == float(np.median([len(p.answer) - 1 for p in pairs]))
    assert copied["improv"]["longest_copy"] < copied["real"]["longest_copy"]


# ---- the command ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def duet_setup(tmp_path_factory) -> tuple[Path, list[str]]:
    """Six small 3/4 MIDI pieces and an untrained checkpoint whose record holds out two of them."""
    from improv.corpus.load import load_corpus
    from improv.model.checkpoint import save_checkpoint, untrained_checkpoint
    from improv.music.midi import Track, midi_bytes
    from improv.settings.load import load_settings

    root = tmp_path_factory.mktemp("duet")
    folder = root / "corpus"
    folder.mkdir()
    rng = np.random.default_rng(6)
    for i in range(6):
        durations = [float(d) for d in rng.choice([0.5, 1.0], 40)]
        notes = list(line([int(p) for p in 60 + rng.choice([0, 2, 4, 5, 7, 9, 11], 40)], durations))
        (folder / f"piece{i}.mid").write_bytes(midi_bytes([Track("x", [Note(int(n["pitch"]), float(n["start"]), float(n["duration"]), 80) for n in notes])], 100, meter=(3, 4)))
    overrides = ["model.hidden_size=16", "model.embed_dim=8", "model.num_layers=1", f"corpus.cache_dir={root / 'cache'}", "corpus.workers=1"]
    settings = load_settings(None, overrides)
    ckpt = untrained_checkpoint(settings.model, settings.tokenizer, seed=0)
    pieces, _ = load_corpus([str(folder)], ckpt.tokenizer, settings.corpus)
    assert [p.meter for p in pieces] == [(3, 4)] * 6
    names = [p.name for p in pieces]
    ckpt.train = {"data": [str(folder)], "heldout": names[:2], "train_pieces": names[2:]}
    path = root / "tiny.pt"
    save_checkpoint(path, ckpt)
    return path, [a for o in overrides for a in ("--set", o)]


@pytest.mark.torch
def test_eval_duet_json_layout_and_table(duet_setup, capsys):
    path, sets = duet_setup
    assert main(["eval", "--duet", "--checkpoint", str(path), "--json", "--answers", "2", "--pairs", "3", "--seed", "1", *sets]) == 0
    result = json.loads(capsys.readouterr().out, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    for name in SYSTEMS:
        assert set(FIGURES) <= set(result[name]), name
    for key in ("answer_nll_primed", "answer_nll_unprimed", "markov_answer_nll", "pairs", "bars", "answers_per_call", "seed", "checkpoint"):
        assert key in result, key
    assert result["pairs"] == 3 and result["bars"] == 2 and result["answers_per_call"] == 2 and result["seed"] == 1
    assert result["improv"]["answers"] == result["shuffled"]["answers"] == 6 and result["real"]["answers"] == 3
    assert main(["eval", "--duet", "--checkpoint", str(path), "--answers", "1", "--pairs", "2", "--bars", "1", *sets]) == 0
    table = capsys.readouterr().out
    assert "rhythm_uptake" in table and "shuffled" in table and "0.8x-1.5x real" in table and "listener AUC" in table and "after the call (primed)" in table
    # The serve settings are the engine's: another setting, other answers; the real ones the same.
    assert main(["eval", "--duet", "--checkpoint", str(path), "--json", "--answers", "2", "--pairs", "3", "--seed", "1", *sets, "--set", "serve.max_voices=1", "--set", "serve.register=free", "--set", "serve.keep_key=false"]) == 0
    other = json.loads(capsys.readouterr().out)
    assert other["real"] == result["real"] and other["improv"] != result["improv"]


@pytest.mark.torch
def test_eval_duet_errors_are_one_line(duet_setup, tmp_path, capsys):
    path, sets = duet_setup
    assert main(["eval", "--duet", "--checkpoint", str(path), "--bars", "40", *sets]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no 40-bar phrase pair" in err[0], err
    empty = tmp_path / "empty.mid"
    from improv.music.midi import Track, midi_bytes

    empty.write_bytes(midi_bytes([Track("x", [Note(60, 0, 1, 80), Note(62, 1, 1, 80)])], 100))
    assert main(["eval", "--duet", "--checkpoint", str(path), "--data", str(empty), *sets]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "phrase pair" in err[0], err
    garbage = tmp_path / "garbage.mid"
    garbage.write_bytes(b"not a MIDI file")
    assert main(["eval", "--duet", "--checkpoint", str(path), "--data", str(garbage), *sets]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(f"no pieces could be read from --data {garbage}"), err


def test_the_engine_answer_is_read_back_on_the_bar_grid():
    from improv.evaluation.answers import engine_answer
    from tests.support.fakes import LadderModel

    call = line([60, 62, 64, 65])  # one bar of quarters, from its downbeat
    exact = dataclasses.replace(ServeSettings(), phrase_ending=False)
    played = engine_answer(LadderModel(), exact, SamplingParams(), call, span=4.0, bpm=120.0, seed=0)
    # The call ends at beat 4; after the silence that ends a call the answer starts on beat 2 of
    # the bar after the call's. Without phrase endings the ladder then climbs a beat apart for
    # exactly as long as the call lasted (4 beats).
    assert played.bpm == pytest.approx(120.0) and played.errors == []  # the pulse tracker gives 119.99999999999997
    assert played.notes["start"].round(6).tolist() == [2.0, 3.0, 4.0, 5.0]
    # With them (the default) the answer ends at the bar line its length reaches, as the call's next
    # bars would (halfway, 6 between 4 and 8: on to 8), not on beat 2 of a bar (realtime.bar_end);
    # never past it (it once ran on to 1.5 times the call: the next phrase's downbeat).
    ending = engine_answer(LadderModel(), ServeSettings(), SamplingParams(), call, span=4.0, bpm=120.0, seed=0)
    assert ending.notes["start"].round(6).tolist() == [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert played.notes["pitch"].tolist() == sorted(played.notes["pitch"].tolist()) and played.notes["pitch"][0] > 65
    broken = engine_answer(LadderModel(fail_at={1}), ServeSettings(), SamplingParams(), call, span=4.0, bpm=120.0, seed=0)
    assert len(broken.notes) == 0 and "model error" in broken.errors[0]


def test_the_engine_answer_is_read_back_in_the_pieces_time_when_the_engine_hears_another_level():
    from improv.evaluation.answers import engine_answer
    from tests.support.fakes import LadderModel

    # Triplet eighths at 40 bpm are heard at 60 (two triplets as the beat; eighths at 40 were
    # heard at 80 until the tracker took the level nearest its prior, the piece's 40, see
    # music.pulse.level). The ladder climbs one of the engine's beats apart; a listener hears that
    # as 2/3 of a beat of the piece, so the listener test must see it so, not rescaled into the
    # engine's beats (which made answers look longer than the call's notes).
    call = line([60, 62, 64, 65, 67, 65, 64, 62, 60, 62, 64, 65], [1 / 3] * 12)
    exact = dataclasses.replace(ServeSettings(), phrase_ending=False)
    played = engine_answer(LadderModel(), exact, SamplingParams(), call, span=4.0, bpm=40.0, seed=0)
    assert played.bpm == pytest.approx(60.0)
    assert np.diff(played.notes["start"]).round(6).tolist() == [round(2 / 3, 6)] * (len(played.notes) - 1)


@pytest.mark.torch
def test_eval_duet_listener_test_and_dump(duet_setup, tmp_path, capsys):
    pytest.importorskip("sklearn")
    from improv.music.midi import read_midi_file

    path, sets = duet_setup
    folder = tmp_path / "pairs"
    assert main(["eval", "--duet", "--checkpoint", str(path), "--json", "--answers", "2", "--pairs", "4", "--dump", str(folder), *sets]) == 0
    result = json.loads(capsys.readouterr().out)
    for name in ("improv", "markov", "unprimed", "shuffled"):
        assert 0.0 <= result[name]["discriminator_auc"] <= 1.0, name
        assert result["discriminator_auc"][name] == result[name]["discriminator_auc"]
    assert result["telling_features"] and {"feature", "auc", "real", "system"} <= set(result["telling_features"][0])
    files = sorted(p.name for p in folder.iterdir())
    # Per call: the real answer once, each generated system twice.
    assert len(files) == result["pairs"] * (1 + 2 * 4) and any(f.startswith("000-real-") for f in files)
    played = read_midi_file(folder / next(f for f in files if f.startswith("000-improv-0")))
    call, answer = played.parts[0].notes, played.parts[1].notes
    assert call and answer and min(n.start for n in answer) >= max(n.start for n in call)
    assert all(n.velocity > 0 for n in call)  # the corpora's silent notes are heard
