"""`improv eval`'s metrics on hand-made inputs, the model's batched NLL, and the command's output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from improv.cli.main import main
from improv.evaluation.metrics import (
    CopyIndex,
    collapse_rate,
    excerpt,
    kde_overlap,
    mean_ioi,
    mgeval_overlap,
    note_length_histogram,
    pitch_class_histogram,
)
from improv.evaluation.nll import heldout_nll, piece_batches
from improv.evaluation.run import model_nll
from improv.music.midi import Track, midi_bytes
from improv.music.notes import Note
from improv.music.tokenizer import BOS, EOS, Tokenizer
from improv.settings.load import load_settings

SMALL = ["model.hidden_size=32", "model.embed_dim=16", "model.num_layers=1"]


# ---- collapse -------------------------------------------------------------------------------------


def rows(*events: int) -> np.ndarray:
    """Rows whose pitch is the given number (other fields fixed): equal numbers, identical events."""
    return np.array([(p, 6, 6, 3) for p in events], dtype=np.uint8).reshape(-1, 4)


def test_collapse_rate_counts_events_in_long_identical_runs():
    assert collapse_rate([rows(*[60] * 8, 62, 64)]) == pytest.approx(8 / 10)
    assert collapse_rate([rows(*[60] * 7, 62, 64)]) == 0.0
    assert collapse_rate([rows(*[60] * 20), rows(61, 62, 63, 64, 65, 66, 67, 68, 69, 70)]) == pytest.approx(20 / 30)
    different_rhythm = np.array([(60, 6 if i % 2 else 3, 6, 3) for i in range(12)], dtype=np.uint8)
    assert collapse_rate([different_rhythm]) == 0.0  # the same pitch in another rhythm is not collapse
    assert collapse_rate([]) == 0.0 and collapse_rate([rows()]) == 0.0


# ---- copy search ------------------------------------------------------------------------------------


def brute_force_longest(query: list[int], texts: list[list[int]]) -> int:
    best = 0
    for text in texts:
        for i in range(len(query)):
            for j in range(len(text)):
                k = 0
                while i + k < len(query) and j + k < len(text) and query[i + k] == text[j + k]:
                    k += 1
                best = max(best, k)
    return best


def test_longest_copy_matches_brute_force_on_random_corpora():
    rng = np.random.default_rng(0)
    for _ in range(40):
        alphabet = int(rng.integers(2, 5))
        texts = [rng.integers(0, alphabet, int(rng.integers(0, 40))) for _ in range(int(rng.integers(1, 5)))]
        queries = [rng.integers(0, alphabet, int(rng.integers(0, 30))) for _ in range(5)]
        got = CopyIndex(texts).longest(queries)
        expected = [brute_force_longest(q.tolist(), [t.tolist() for t in texts]) for q in queries]
        assert got.tolist() == expected


def test_longest_copy_finds_planted_runs_and_never_crosses_pieces():
    rng = np.random.default_rng(1)
    texts = [rng.integers(1000, 10**6, 500) for _ in range(20)]
    query = rng.integers(10**6, 2 * 10**6, 100)
    query[30:67] = texts[7][200:237]  # a 37-event copy
    assert CopyIndex(texts).longest([query]).tolist() == [37]
    index = CopyIndex([np.array([1, 2]), np.array([3, 4])])
    assert index.longest([np.array([1, 2, 3, 4]), np.array([2, 3]), np.array([9])]).tolist() == [2, 1, 0]


# ---- MGEval -----------------------------------------------------------------------------------------


def test_features_of_a_hand_made_phrase():
    notes = [Note(60, 0, 1, 80), Note(64, 0, 1, 80), Note(67, 1, 2, 80), Note(72, 3, 0.5, 80)]
    pc = pitch_class_histogram(notes)
    assert pc[0] == pytest.approx(1.5 / 4.5) and pc[7] == pytest.approx(2 / 4.5) and pc.sum() == pytest.approx(1)
    nl = note_length_histogram(notes)  # classes: whole, half, quarter, 8th, ...
    assert nl[2] == pytest.approx(0.5) and nl[1] == pytest.approx(0.25) and nl[3] == pytest.approx(0.25)
    assert mean_ioi(notes)[0] == pytest.approx(1.5)  # onsets 0, 1, 3 (the chord is one onset)
    assert pitch_class_histogram([]).sum() == 0 and mean_ioi([])[0] == 0


def test_kde_overlap_of_identical_and_disjoint_samples():
    rng = np.random.default_rng(2)
    a = rng.normal(0, 1, 400)
    assert kde_overlap(a, a) == pytest.approx(1, abs=1e-6)
    assert kde_overlap(a, rng.normal(0, 1, 300)) > 0.85
    assert kde_overlap(a, a + 20) < 1e-6
    assert kde_overlap(np.zeros(10), np.zeros(5)) == pytest.approx(1, abs=1e-6)  # zero spread


def test_mgeval_overlap_of_the_same_set_is_near_one_and_of_a_foreign_set_near_zero():
    rng = np.random.default_rng(3)
    major = [0, 2, 4, 5, 7, 9, 11]

    def phrase(pitch_classes: list[int]) -> list[Note]:
        return [Note(60 + int(rng.choice(pitch_classes)), 0.5 * i, 0.5, 80) for i in range(64)]

    real = np.array([pitch_class_histogram(phrase(major)) for _ in range(30)])
    same = np.array([pitch_class_histogram(phrase(major)) for _ in range(30)])
    foreign = np.array([pitch_class_histogram(phrase([1, 6])) for _ in range(30)])
    assert mgeval_overlap(real, real) > 0.85
    assert mgeval_overlap(same, real) > 0.8
    assert mgeval_overlap(foreign, real) < 0.05


# ---- the model's NLL ---------------------------------------------------------------------------------


def random_piece(rng: np.random.Generator, n: int) -> np.ndarray:
    tok = Tokenizer()
    body = np.stack([rng.integers(40, 80, n), rng.integers(0, 20, n), rng.integers(1, 20, n), rng.integers(0, tok.sizes[3], n)], axis=1)
    return np.concatenate([[[BOS, 0, 0, 0]], body, [[EOS, 0, 0, 0]]]).astype(np.uint8)


@pytest.mark.torch
def test_batched_torch_nll_equals_numpy_step_model():
    import torch

    from improv.model.checkpoint import untrained_checkpoint

    ckpt = untrained_checkpoint(load_settings(None, SMALL).model, seed=4)
    with torch.no_grad():
        for w in ckpt.weights.values():
            w.mul_(2.0)  # away from the near-uniform initialisation
    rng = np.random.default_rng(4)
    pieces = [random_piece(rng, n) for n in (3, 40, 17, 0, 25)]
    total, n = heldout_nll(ckpt.build_model(), pieces, max_events=64)  # small batches: padding and several flushes
    assert n == sum(len(p) - 1 for p in pieces)
    step = ckpt.step_model()
    expected = np.zeros(4)
    for piece in pieces:
        state = step.initial_state()
        for t in range(len(piece) - 1):
            state = step.step(state, piece[t])
            expected += step.event_nll(state, piece[t + 1])
    assert np.allclose(total, expected, rtol=1e-4)


def test_excerpt_drops_specials_and_crops():
    piece = random_piece(np.random.default_rng(5), 30)
    ex = excerpt(piece, 10)
    assert len(ex) == 10 and (ex[:, 0] < BOS).all() and np.array_equal(ex, piece[1:11])


# ---- the command -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """A corpus of 8 small MIDI files and an untrained checkpoint whose record splits it 5 / 3."""
    from improv.model.checkpoint import save_checkpoint, untrained_checkpoint

    root = tmp_path_factory.mktemp("eval")
    folder = root / "corpus"
    folder.mkdir()
    rng = np.random.default_rng(6)
    for i in range(8):
        notes, t = [], 0.0
        for j in range(40):
            t += float(rng.choice([0.5, 1.0, 0.25]))
            pitch = 60 + int(rng.choice([0, 2, 4, 5, 7, 9, 11]))
            notes.append(Note(pitch, t, float(rng.choice([0.5, 1.0])), int(rng.integers(40, 100))))
            if j % 4 == 0:
                notes.append(Note(pitch - 12, t, 1.0, 70))
        (folder / f"piece{i}.mid").write_bytes(midi_bytes([Track("x", notes)], 100))
    overrides = [*SMALL, f"corpus.cache_dir={root / 'cache'}", "corpus.workers=1", "eval.sample_length=24"]
    settings = load_settings(None, overrides)
    ckpt = untrained_checkpoint(settings.model, settings.tokenizer, seed=0)
    from improv.corpus.load import load_corpus

    pieces, _ = load_corpus([str(folder)], ckpt.tokenizer, settings.corpus)
    names = [p.name for p in pieces]
    assert len(names) == 8
    ckpt.train = {"data": [str(folder)], "heldout": names[:3], "train_pieces": names[3:]}
    path = root / "tiny.pt"
    save_checkpoint(path, ckpt)
    return path, folder, overrides


def eval_json(path: Path, overrides: list[str], *extra: str, capsys) -> dict:
    sets = [a for o in overrides for a in ("--set", o)]
    assert main(["eval", "--checkpoint", str(path), "--json", "--samples", "3", *sets, *extra]) == 0
    return json.loads(capsys.readouterr().out, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))


@pytest.mark.torch
def test_eval_json_shape(tiny_setup, capsys):
    path, _, overrides = tiny_setup
    result = eval_json(path, overrides, capsys=capsys)
    for prefix in ("heldout_nll", "markov_nll", "unigram_nll"):
        heads = [result[f"{prefix}_{f}"] for f in ("pitch", "offset", "duration", "velocity")]
        assert result[prefix] == pytest.approx(sum(heads)) and all(h > 0 for h in heads)
    assert result["heldout_pieces"] == 3 and result["train_pieces"] == 5
    assert result["heldout_events"] > 100
    assert 0 <= result["collapse_rate"] <= 1
    assert result["longest_copy"] >= 0 and result["corpus_longest_copy"] >= 0
    for key in ("pitch_class_overlap", "note_length_overlap", "ioi_overlap"):
        assert 0 <= result[key] <= 1
    assert result["samples"] == 3 and result["sample_length"] == 24 and result["markov_order"] == 4
    # An untrained model is worse than both baselines fitted on the training pieces.
    assert result["heldout_nll"] > result["markov_nll"] and result["heldout_nll"] > result["unigram_nll"]


@pytest.mark.torch
def test_eval_on_other_data_and_table(tiny_setup, capsys):
    path, folder, overrides = tiny_setup
    result = eval_json(path, overrides, "--data", str(folder / "piece0.mid"), capsys=capsys)
    assert result["heldout_pieces"] == 1 and result["train_pieces"] == 5
    assert result["pitch_class_overlap"] is None  # needs two real pieces: null, not NaN
    sets = [a for o in overrides for a in ("--set", o)]
    assert main(["eval", "--checkpoint", str(path), "--samples", "2", *sets]) == 0
    table = capsys.readouterr().out
    assert "markov-4" in table and "unigram" in table and "collapse_rate" in table and "pitch_class_overlap" in table
    # An untrained model: the verdict, as `eval --duet` gives one, is the table's last line.
    assert table.strip().splitlines()[-1].startswith("verdict: below the quality bar: heldout_nll"), table
    # One real piece: the table says why the overlaps are missing.
    assert main(["eval", "--checkpoint", str(path), "--samples", "2", "--data", str(folder / "piece0.mid"), *sets]) == 0
    table = capsys.readouterr().out
    assert re.search(r"pitch_class_overlap +n/a +needs at least 2 real pieces", table), table
    assert "not judged (too few pieces): pitch_class_overlap, note_length_overlap" in table.strip().splitlines()[-1]


def eval_result(**figures: float | None) -> dict:
    """A whole `improv eval` result that meets the quality bar, with ``figures`` changed."""
    result = {f"{p}{s}": v for p, v in (("heldout_nll", 2.0), ("markov_nll", 3.0), ("unigram_nll", 6.0)) for s in ("", "_offset", "_pitch", "_duration", "_velocity")}
    result.update(heldout_pieces=9, heldout_events=900, train_pieces=80, train_events=8000, samples=16, sample_length=256, sample_events_mean=200.0, markov_order=4, temperature=1.0, top_k=0, top_p=0.95, seed=0)
    result.update(collapse_rate=0.0, longest_copy=6.0, corpus_longest_copy=8.0, pitch_class_overlap=0.9, note_length_overlap=0.85, ioi_overlap=0.5)
    result.update(figures)
    return result


@pytest.mark.parametrize(
    "figures, last_line",
    [
        ({}, "verdict: meets the quality bar (5 of 5 targets met)"),
        ({"ioi_overlap": 0.1}, "verdict: meets the quality bar (5 of 5 targets met)"),  # shown, not judged
        ({"heldout_nll": 3.5, "collapse_rate": 0.05}, "verdict: below the quality bar: heldout_nll, collapse_rate (3 of 5 targets met)"),
        ({"longest_copy": 9.0, "note_length_overlap": 0.79}, "verdict: below the quality bar: longest_copy, note_length_overlap (3 of 5 targets met)"),
    ],
)
def test_eval_prints_a_verdict_against_the_quality_bar(figures, last_line):
    from improv.evaluation.run import format_table, targets_met

    table = format_table(eval_result(**figures))
    assert table.splitlines()[-1] == last_line, table
    met = targets_met(eval_result(**figures))
    for name in ("collapse_rate", "pitch_class_overlap"):
        line = next(l for l in table.splitlines() if l.startswith(name))
        assert line.endswith(" (met)" if met[name] else " (NOT met)"), line
    assert re.search(r"ioi_overlap .*\(no target\)$", table, re.M), table


@pytest.mark.torch
@pytest.mark.parametrize(
    "names, val_fraction, why",
    [
        (["only.mid"], 0.1, "it was trained on a single piece, which is never held out"),
        (["a.mid", "b.mid"], 0.0, "it was trained with train.val_fraction = 0"),
    ],
)
def test_nothing_held_out_says_why(tmp_path, capsys, names, val_fraction, why):
    from improv.model.checkpoint import save_checkpoint, untrained_checkpoint

    folder = tmp_path / "corpus"
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes(midi_bytes([Track("x", [Note(60, 0.0, 1.0, 80), Note(62, 1.0, 1.0, 80)])], 100))
    ckpt = untrained_checkpoint(load_settings(None, SMALL).model)
    pieces = [f"{folder}/{name}" for name in names]
    ckpt.train = {"data": [str(folder)], "heldout": [], "train_pieces": pieces, "settings": {"val_fraction": val_fraction}}
    path = tmp_path / "m.pt"
    save_checkpoint(path, ckpt)
    sets = [a for o in [*SMALL, f"corpus.cache_dir={tmp_path / 'cache'}", "corpus.workers=1"] for a in ("--set", o)]
    assert main(["eval", "--checkpoint", str(path), *sets]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"held out no pieces ({why}): pass --data" in err[0], err


@pytest.mark.torch
def test_batched_nll_uses_the_training_thread_rule(monkeypatch):
    import torch

    from improv.model.checkpoint import untrained_checkpoint

    import improv.evaluation.nll
    import improv.io.machine

    seen = []
    monkeypatch.setattr(improv.io.machine, "usable_cores", lambda: 6)
    monkeypatch.setattr(improv.evaluation.nll, "heldout_nll", lambda net, pieces: seen.append(torch.get_num_threads()) or (np.zeros(4), 0))
    before = torch.get_num_threads()
    model_nll(untrained_checkpoint(load_settings(None, SMALL).model), [])
    assert seen == [3] and torch.get_num_threads() == before  # half the usable cores, for the call only


@pytest.mark.torch
def test_eval_errors_are_one_line(tmp_path, capsys):
    from improv.model.checkpoint import save_checkpoint, untrained_checkpoint

    bare = tmp_path / "bare.pt"
    save_checkpoint(bare, untrained_checkpoint(load_settings(None, SMALL).model))
    for args, message in [
        (["--checkpoint", str(bare)], "holds no training record"),
        (["--checkpoint", str(tmp_path / "none.pt")], "improv train --out"),
        (["--checkpoint", str(bare), "--samples", "0"], "--samples must be >= 1"),
    ]:
        assert main(["eval", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_piece_batches_hold_whole_pieces_from_bos():
    rng = np.random.default_rng(9)
    pieces = [random_piece(rng, n) for n in (5, 30, 12, 7, 22, 16, 9, 3, 28)]
    batches = piece_batches(pieces, max_events=60)
    assert len(batches) > 1
    assert sum(int(mask.sum()) for _, mask in batches) == sum(len(p) - 1 for p in pieces)
    for rows, mask in batches:
        assert rows[:, 0, 0].tolist() == [BOS] * len(rows)
        assert rows.shape[1] == mask.shape[1] + 1


@pytest.mark.torch
def test_eval_of_a_npz_alone_fits_the_baselines_on_the_rest_of_its_data(tiny_setup, tmp_path, capsys):
    # A wheel ships a voice's .npz alone: it names its held-out pieces, and training took the rest.
    from improv.model.checkpoint import load_checkpoint, save_checkpoint

    path, _, overrides = tiny_setup
    alone = tmp_path / "alone.pt"
    save_checkpoint(alone, load_checkpoint(path), with_weights_file=True)
    alone.unlink()
    result = eval_json(tmp_path / "alone.npz", overrides, capsys=capsys)
    assert result["heldout_pieces"] == 3 and result["train_pieces"] == 5
    assert result["heldout_nll"] == pytest.approx(eval_json(path, overrides, capsys=capsys)["heldout_nll"])
