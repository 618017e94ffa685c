"""`improv train --pairs`: call -> answer fine-tuning. Pairs are cut as `eval --duet` cuts them, the
loss falls on the answers only, the held-out pieces of the starting model stay held out, and the
checkpoint it writes answers a call in an engine."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from pathlib import Path

import mido
import numpy as np
import pytest

from improv.evaluation.phrases import cut_pairs
from improv.music.notes import Note
from improv.music.tokenizer import BOS, PITCH, Tokenizer
from improv.training.pairs import pair_sequences, plan_pairs

TOK = Tokenizer()
LOW, HIGH = (36, 38, 40, 41, 43), (84, 86, 88, 89, 91)  # calls in the bass, answers high up


@dataclass
class Piece:
    name: str
    tokens: np.ndarray
    source: str = ""
    bpm: float | None = None
    meter: tuple[int, int] | None = (4, 4)


def call_and_answer_pieces(n: int, seed: int = 0) -> list[Piece]:
    """4/4 pieces in crotchets: two bars low (a call), two bars high (its answer), twice over.
    The answer copies the call's shape two octaves and a fourth up: learnable from the call."""
    rng = np.random.default_rng(seed)
    pieces = []
    for i in range(n):
        notes, t = [], 0.0
        for _ in range(2):
            call = [int(rng.integers(len(LOW))) for _ in range(8)]
            for k in call:
                notes.append(Note(LOW[k], t, 1.0, 80))
                t += 1.0
            for k in call:
                notes.append(Note(HIGH[k], t, 1.0, 80))
                t += 1.0
        pieces.append(Piece(f"piece{i:02d}.mid", TOK.encode(notes)))
    return pieces


def test_a_pair_is_bos_the_call_then_the_answer_and_only_the_answer_is_a_target():
    piece = call_and_answer_pieces(1)[0]
    cut = cut_pairs(piece.name, piece.tokens, TOK, piece.meter, 2)
    pairs = pair_sequences([piece], TOK, [2])
    assert len(pairs) == len(cut) == 2
    for pair, duet in zip(pairs, cut):  # exactly the eval's call rows and real answer rows
        assert pair.rows[0, PITCH] == BOS
        assert np.array_equal(pair.rows[1 : pair.answer_at], duet.call_rows)
        assert np.array_equal(pair.rows[pair.answer_at :], duet.answer_rows)
        mask = pair.targets_mask()  # targets are rows[1:]
        assert len(mask) == len(pair.rows) - 1
        assert not mask[: pair.answer_at - 1].any() and mask[pair.answer_at - 1 :].all()
        assert set(pair.rows[pair.answer_at :, PITCH]) <= set(HIGH) and set(pair.rows[1 : pair.answer_at, PITCH]) <= set(LOW)
    # 1-bar pairs too, when asked
    assert len(pair_sequences([piece], TOK, [1, 2])) == 4 + 2


def test_an_epoch_of_pairs_trains_every_answer_event_once_and_is_seeded():
    pairs = pair_sequences(call_and_answer_pieces(9), TOK, [1, 2])
    plan = plan_pairs(pairs, None, 4, seed=3, epoch=0)
    assert plan.targets_count == sum(int(p.targets_mask().sum()) for p in pairs)
    assert sum(len(plan.batch(i).inputs) for i in range(len(plan))) == len(pairs)
    assert all(plan.batch(i).reset.all() for i in range(len(plan)))  # each pair from a zero state
    again = plan_pairs(pairs, None, 4, seed=3, epoch=0)
    assert all(np.array_equal(plan.batch(i).targets, again.batch(i).targets) for i in range(len(plan)))
    # two ranks of a distributed run share the batches' rows between them
    halves = [plan_pairs(pairs, None, 2, seed=3, epoch=0, rank=r, world=2) for r in (0, 1)]
    assert sum(h.targets_count for h in halves) == plan.targets_count


@pytest.mark.torch
def test_a_piece_the_starting_model_held_out_stays_held_out():
    from improv.training.run import keep_held_out

    pieces = call_and_answer_pieces(6)
    train, val = pieces[:5], pieces[5:]
    kept, held = keep_held_out(train, val, [pieces[1].name, "elsewhere.mid"])
    assert [p.name for p in kept] == [pieces[i].name for i in (0, 2, 3, 4)]
    assert [p.name for p in held] == [pieces[1].name, pieces[5].name]


def _nll(net, pairs, answers: bool) -> float:
    """Mean NLL per event of the answers (or of the calls) of ``pairs`` after BOS and the call."""
    import torch

    from improv.model.network import event_losses
    from improv.training.pairs import padded

    x, y, _ = (torch.from_numpy(a) for a in padded(pairs))
    # Masks of our own (not the code's under test): target t is rows[t + 1].
    steps = np.arange(1, x.shape[1] + 1)
    m = torch.from_numpy(np.stack([((steps >= p.answer_at) if answers else (steps < p.answer_at)) & (steps < len(p.rows)) for p in pairs]))
    net.eval()
    with torch.no_grad():
        logits, _ = net(x.long(), y.long())
        losses = event_losses(logits, y.long(), reduction="none").sum(0)
    return float((losses * m).sum() / m.sum())


@pytest.mark.torch
def test_pairs_training_learns_the_answers_not_the_calls_and_the_checkpoint_answers_a_call(tmp_path):
    from improv.evaluation.answers import call_script
    from improv.evaluation.drive import drive
    from improv.model.checkpoint import load_checkpoint
    from improv.model.sampling import SamplingParams
    from improv.model.voices import load_player
    from improv.realtime.engine import Engine
    from improv.settings.sections import ModelSettings, Settings, TrainSettings
    from improv.settings.serve_section import ServeSettings
    from improv.training.run import train

    pieces = call_and_answer_pieces(24)
    ts = TrainSettings(
        data=["synthetic"], out=str(tmp_path / "m.pt"), epochs=12, batch_size=8, warmup_steps=4, lr=0.03, val_fraction=0.2,
        threads=1, patience=0, transpose=0, pairs=True,
    )  # fmt: skip
    settings = Settings(model=ModelSettings(embed_dim=16, hidden_size=32, num_layers=1, dropout=0.0), train=ts)
    lines: list[str] = []
    summary = train(settings.train, settings.model, settings.tokenizer, settings.corpus, pieces=pieces, show_progress=False, log=lines.append)
    assert summary["train_pairs"] > 0 and summary["val_pairs"] > 0
    assert any("call/answer pairs (2 bars a side)" in line and "the only targets" in line for line in lines)
    ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt.train["settings"]["pairs"] is True
    held = pair_sequences([p for p in pieces if p.name in set(ckpt.heldout)], TOK, [2])
    net = ckpt.build_model()
    answer_nll, call_nll = _nll(net, held, answers=True), _nll(net, held, answers=False)
    # The answers are learnt (from the call: they copy its shape); the calls, never a target, are not.
    assert answer_nll < 2.5, answer_nll  # an untrained model: about 15 nats
    assert call_nll > answer_nll + 4.0, (call_nll, answer_nll)
    assert summary["best_val_loss"] == pytest.approx(answer_nll, abs=1e-3)  # validation is this number

    # The checkpoint's torch-free weights answer a call in an engine, every note closed.
    player = load_player(tmp_path / "m.npz")
    # The register and motif rules off: the answer's register is then the voice's own.
    serve = ServeSettings(estimate_tempo=False, bpm=120.0, rule_register=0.0, rule_motif=0.0)
    engine = Engine(player.step_model(), serve, SamplingParams(temperature=1.0, top_p=0.95), seed=0)
    call = held[0].rows[1 : held[0].answer_at]
    notes = TOK.decode(call)
    from improv.music.notes import note_array

    script = call_script(note_array(notes), 120.0, 0)
    sent = drive(engine, script, until=60.0, start=script[0][0], shutdown=True)
    ons = [m for _, m in sent if m.type == "note_on" and m.velocity > 0 and m.channel == serve.channel - 1]
    offs = [m for _, m in sent if (m.type == "note_off" or (m.type == "note_on" and m.velocity == 0)) and m.channel == serve.channel - 1]
    assert len(ons) >= 4 and len(offs) >= len(ons)
    assert np.mean([m.note >= 60 for m in ons]) > 0.8  # it answers high, as it learnt to


@pytest.mark.torch
def test_the_command_trains_on_pairs_and_says_so(tmp_path, capsys):
    import json

    from improv.cli.main import main
    from improv.model.checkpoint import load_checkpoint
    from improv.music.midi import Track, midi_bytes

    folder = tmp_path / "midi"
    folder.mkdir()
    for piece in call_and_answer_pieces(6):
        (folder / piece.name).write_bytes(midi_bytes([Track("piano", TOK.decode(piece.tokens))], 100.0))
    out = tmp_path / "tuned.pt"
    sets = ["--set", "model.embed_dim=8", "--set", "model.hidden_size=16", "--set", "model.num_layers=1", "--set", "train.batch_size=2",
            "--set", "train.threads=1", "--set", "corpus.workers=1", "--set", f"corpus.cache_dir={tmp_path / 'cache'}", "--set", "train.pair_bars=[1, 2]"]  # fmt: skip
    assert main(["train", "--data", str(folder), "--out", str(out), "--epochs", "1", "--pairs", "--json", *sets]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["train_pairs"] == 5 * (4 + 2) and summary["val_pairs"] == 4 + 2  # 1- and 2-bar pairs of 5 + 1 pieces
    assert "(1/2 bars a side)" in captured.err
    settings = load_checkpoint(out).train["settings"]
    assert settings["pairs"] is True and settings["pair_bars"] == [1, 2]
