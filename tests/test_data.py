"""Training data: the split by piece, augmentation that keeps pieces valid, the epoch plans."""

from __future__ import annotations

import numpy as np
import pytest
from support.pieces import Piece, make_pieces

from improv.music.tokenizer import BOS, DURATION, EOS, OFFSET, PITCH, Tokenizer
from improv.training.batches import (
    Augmenter,
    plan_epoch,
    split_pieces,
    transposition_shifts,
)

TOK = Tokenizer()


def test_split_is_by_piece_seeded_and_disjoint():
    pieces = make_pieces(20)
    train, val = split_pieces(pieces, 0.2, seed=1)
    assert len(val) == 4 and len(train) == 16
    assert {p.name for p in train}.isdisjoint(p.name for p in val)
    assert {p.name for p in train} | {p.name for p in val} == {p.name for p in pieces}
    again = split_pieces(pieces, 0.2, seed=1)[1]
    assert [p.name for p in again] == [p.name for p in val]
    assert [p.name for p in split_pieces(pieces, 0.2, seed=2)[1]] != [p.name for p in val]
    # The split follows names, not positions: adding a piece does not reshuffle the others.
    more = split_pieces(pieces + [Piece("zzz.mid", pieces[0].tokens)], 0.2, seed=1)[1]
    assert {p.name for p in more} - {"zzz.mid"} <= {p.name for p in val}
    assert split_pieces(pieces[:2], 0.01, seed=0)[1] and split_pieces(pieces[:1], 0.5, seed=0) == (pieces[:1], [])
    assert split_pieces(pieces, 0.0, seed=0) == (pieces, [])


def test_split_within_each_source_holds_out_what_each_source_alone_holds_out():
    folk = [Piece(f"folk/{i:03d}.abc", t.tokens, "folk") for i, t in enumerate(make_pieces(40, seed=1))]
    bach = [Piece(f"bach/{i:03d}.mxl", t.tokens, "bach") for i, t in enumerate(make_pieces(25, seed=2))]
    both_train, both_val = split_pieces(folk + bach, 0.1, seed=0)
    folk_val = split_pieces(folk, 0.1, seed=0)[1]
    bach_val = split_pieces(bach, 0.1, seed=0)[1]
    # A base model on both never trains on a piece that a model of one collection holds out.
    assert {p.name for p in both_val} == {p.name for p in folk_val + bach_val}
    assert len(folk_val) == 4 and len(bach_val) == 2  # each collection is represented
    assert not {p.name for p in both_train} & {p.name for p in folk_val + bach_val}


def test_the_split_does_not_depend_on_how_the_folder_is_spelled(tmp_path, monkeypatch):
    # The README's fine-tuning figure held out other pieces when the folder was typed another way.
    from improv.corpus.load import load_corpus
    from improv.music.midi import Track, midi_bytes
    from improv.music.notes import Note
    from improv.settings.sections import CorpusSettings

    folder = tmp_path / "data" / "piano"
    folder.mkdir(parents=True)
    for i in range(20):
        notes = [Note(48 + i + k, float(k), 1.0, 80) for k in range(4)]
        (folder / f"song{i:02d}.mid").write_bytes(midi_bytes([Track("x", notes)], 100))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    corpus = CorpusSettings(cache_dir=str(tmp_path / "cache"), workers=1)
    held = []
    for spelling in (str(folder), "../data/piano", "../data/piano/", "../data/../data/piano"):
        pieces, _ = load_corpus([spelling], TOK, corpus, progress=False)
        assert len(pieces) == 20
        held.append(sorted(p.name.rsplit("/", 1)[1] for p in split_pieces(pieces, 0.2, seed=0)[1]))
    assert all(h == held[0] for h in held) and len(held[0]) == 4


def test_augmentation_keeps_pieces_valid():
    aug = Augmenter(TOK, transpose=12, tempo_stretch=0.2)
    rng = np.random.default_rng(0)
    for piece in make_pieces(10, low=2, high=126):  # near both ends of the pitch range
        for _ in range(10):
            out = aug(piece.tokens, rng)
            assert out.shape == piece.tokens.shape and out.dtype == np.uint8
            notes = out[1:-1]
            assert out[0].tolist() == [BOS, 0, 0, 0] and out[-1].tolist() == [EOS, 0, 0, 0]
            assert notes[:, PITCH].max() <= 127
            assert (notes[:, DURATION] >= 1).all() and (notes[:, DURATION] < TOK.sizes[DURATION]).all()
            assert (notes[:, OFFSET] < TOK.sizes[OFFSET]).all()
            # Chords stay chords: a zero offset stays zero.
            assert ((piece.tokens[1:-1, OFFSET] == 0) <= (notes[:, OFFSET] == 0)).all()


def test_transposition_and_stretch_tables():
    aug = Augmenter(TOK, transpose=3, tempo_stretch=0.1, n_stretch=3)
    piece = make_pieces(1)[0]
    up = aug.apply(piece.tokens, 2, 1)  # factor 1.0: pitch shift only
    assert (up[1:-1, PITCH] == piece.tokens[1:-1, PITCH] + 2).all()
    assert (up[:, 1:] == piece.tokens[:, 1:]).all()
    assert aug.factors.tolist() == pytest.approx([0.9, 1.0, 1.1])
    beat = TOK.quantize_time(1.0)
    assert TOK.time_values[aug.offset_tables[2][beat]] == pytest.approx(1.1, abs=1 / 24)
    assert TOK.time_values[aug.offset_tables[0][beat]] == pytest.approx(0.9, abs=1 / 24)
    assert Augmenter(TOK, 0, 0.0).identity


def test_transposition_by_semitones_or_fifths():
    assert transposition_shifts(2).tolist() == [-2, -1, 0, 1, 2]
    assert transposition_shifts(0, "fifths").tolist() == [0]
    # One fifth up is a fourth down (C -> G), one down a fourth up (C -> F): never a semitone.
    assert transposition_shifts(1, "fifths").tolist() == [-5, 0, 5]
    assert transposition_shifts(2, "fifths").tolist() == [-5, -2, 0, 2, 5]
    # Six fifths either way reach every key, each once, within a tritone of the original register.
    assert sorted(np.mod(transposition_shifts(6, "fifths"), 12).tolist()) == list(range(12))
    assert np.abs(transposition_shifts(6, "fifths")).max() <= 6
    with pytest.raises(ValueError, match="fifths"):
        transposition_shifts(1, "thirds")
    # The augmenter draws every shift of its set, and nothing else.
    aug = Augmenter(TOK, 1, 0.0, transpose_by="fifths")
    piece = make_pieces(1)[0]
    rng = np.random.default_rng(0)
    seen = {int(aug(piece.tokens, rng)[1, PITCH]) - int(piece.tokens[1, PITCH]) for _ in range(200)}
    assert seen == {-5, 0, 5}
    assert not aug.identity and Augmenter(TOK, 0, 0.0, transpose_by="fifths").identity


def test_epoch_plan_covers_every_target_once():
    pieces = make_pieces(15)
    plan = plan_epoch(pieces, None, batch_size=3, chunk_len=16, seed=0, epoch=0, mode="pieces")
    assert plan.targets_count == sum(len(p.tokens) - 1 for p in pieces)
    assert plan.starts.sum() == len(pieces)
    # Every piece starts at a chunk boundary with its BOS as the first input.
    rows, chunks = np.nonzero(plan.starts)
    assert (plan.inputs[rows, chunks * 16, PITCH] == BOS).all()
    # Deterministic per (seed, epoch), different across epochs.
    again = plan_epoch(pieces, None, 3, 16, seed=0, epoch=0, mode="pieces")
    other = plan_epoch(pieces, None, 3, 16, seed=0, epoch=1, mode="pieces")
    assert np.array_equal(plan.inputs, again.inputs) and not np.array_equal(plan.inputs, other.inputs[:, : plan.inputs.shape[1]])
    batch = plan.batch(1)
    assert batch.inputs.shape == (3, 16, 4) and batch.mask.shape == (3, 16) and batch.reset.shape == (3,)
    flat_x, flat_y, flat_m = plan.inputs.reshape(-1, 4), plan.targets.reshape(-1, 4), plan.mask.reshape(-1)
    inside = flat_m[:-1] & flat_m[1:] & (flat_x[1:, PITCH] != BOS)
    assert np.array_equal(flat_x[1:][inside], flat_y[:-1][inside])  # each target is the next input
    assert (flat_y[flat_m][:, PITCH] != BOS).all()  # never asked to predict a BOS


def test_stream_plan_runs_pieces_back_to_back():
    pieces = make_pieces(15)
    plan = plan_epoch(pieces, None, batch_size=3, chunk_len=16, seed=0, epoch=0)
    assert plan.targets_count == sum(len(p.tokens) - 1 for p in pieces)
    assert plan.starts[:, 0].all() and not plan.starts[:, 1:].any()  # state carried all epoch
    assert plan.mask.size - plan.targets_count < 3 * 16  # padding only at the ends of rows
    x, m = plan.inputs.reshape(-1, 4), plan.mask.reshape(-1)
    assert (x[m][:, PITCH] != EOS).all()  # EOS is predicted, never fed (as in evaluation)
    assert (x[m][:, PITCH] == BOS).sum() == len(pieces)


def test_crop_starts_some_pieces_mid_piece():
    pieces = make_pieces(40)
    plan = plan_epoch(pieces, None, 4, 16, seed=0, epoch=0, crop=0.5, mode="pieces")
    rows, chunks = np.nonzero(plan.starts)
    first = plan.inputs[rows, chunks * 16, PITCH]
    assert 5 < (first != BOS).sum() < 35 and (first == BOS).sum() == len(pieces)
    assert plan.targets_count == sum(len(p.tokens) - 1 for p in pieces)  # cut, not dropped


def test_ranks_split_the_rows_of_one_plan():
    pieces = make_pieces(15)
    aug = Augmenter(TOK, 5, 0.1)
    whole = plan_epoch(pieces, aug, 4, 16, seed=3, epoch=2, crop=0.2)
    r0 = plan_epoch(pieces, aug, 2, 16, seed=3, epoch=2, crop=0.2, rank=0, world=2)
    r1 = plan_epoch(pieces, aug, 2, 16, seed=3, epoch=2, crop=0.2, rank=1, world=2)
    assert len(r0) == len(r1) == len(whole)
    assert np.array_equal(r0.inputs, whole.inputs[0::2]) and np.array_equal(r1.inputs, whole.inputs[1::2])
