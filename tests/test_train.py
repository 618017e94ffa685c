"""`improv train`: it learns, records its split, resumes exactly, survives interrupts, errs in one line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import mido
import numpy as np
import pytest
from support.needs_torch import torch_or_skip
from support.pieces import make_pieces

torch = torch_or_skip()  # the whole module trains or reads .pt files: skipped, saying how to get torch, without it

import improv.training.loop as train_mod
from improv.cli.main import main
from improv.errors import ImprovError
from improv.evaluation.baselines import UnigramModel
from improv.model.checkpoint import load_checkpoint
from improv.music.tokenizer import Tokenizer
from improv.settings.sections import ModelSettings, Settings, TrainSettings
from improv.training.artefacts import last_path, plot_path
from improv.training.batches import split_pieces
from improv.training.distributed import Dist, set_threads
from improv.training.run import train
from improv.training.step import lr_at

REPO = Path(__file__).resolve().parent.parent
RECORD_KEYS = {"data", "heldout", "train_pieces", "settings", "step", "epoch", "train_loss", "val_loss", "best_val_loss", "history", "device", "seconds"}


def fit(settings: Settings, **kw):
    """``training.run.train`` with the sections of ``settings`` (as the command hands them)."""
    return train(settings.train, settings.model, settings.tokenizer, settings.corpus, **kw)


def tiny(tmp_path: Path, **train_kw) -> Settings:
    ts = dict(batch_size=4, chunk_len=16, epochs=3, warmup_steps=4, lr=0.03, val_fraction=0.2, threads=1, out=str(tmp_path / "m.pt"), data=["synthetic"])
    ts.update(train_kw)
    return Settings(model=ModelSettings(embed_dim=8, hidden_size=16, num_layers=1, dropout=0.0), train=TrainSettings(**ts))


def quiet(line: str) -> None:
    pass


def test_training_learns_and_records_its_split(tmp_path):
    pieces = make_pieces(20)
    settings = tiny(tmp_path, epochs=15, patience=0)
    settings = replace(settings, model=replace(settings.model, embed_dim=16, hidden_size=32))
    summary = fit(settings, pieces=pieces, show_progress=False, log=quiet)
    assert summary["steps"] > 0 and summary["epochs"] == 15
    best = load_checkpoint(tmp_path / "m.pt")
    last = load_checkpoint(last_path(tmp_path / "m.pt"))
    assert RECORD_KEYS <= set(best.train) and RECORD_KEYS <= set(last.train)
    history = best.train["history"]
    assert min(h["val_loss"] for h in history) < history[0]["val_loss"] - 3.0  # it learns
    assert summary["best_val_loss"] < summary["unigram_val_loss"] - 2.0
    heldout, train_names = set(best.heldout), set(best.train["train_pieces"])
    assert len(heldout) == 4 and heldout.isdisjoint(train_names) and heldout | train_names == {p.name for p in pieces}
    assert best.resume is None and last.resume is not None  # the shipped file carries no optimiser state
    assert best.train["val_loss"] == pytest.approx(summary["best_val_loss"])
    assert plot_path(tmp_path / "m.pt").stat().st_size > 1000
    assert best.train["settings"]["batch_size"] == 4
    # The unigram baseline train prints is eval's unigram_nll (markov.UnigramModel), not a second one.
    train_part, val_part = split_pieces(pieces, 0.2, seed=0)
    total, count = UnigramModel(Tokenizer().sizes).fit([p.tokens for p in train_part]).nll([p.tokens for p in val_part])
    assert summary["unigram_val_loss"] == pytest.approx(total.sum() / count)


def test_lr_schedule_warms_up_then_decays():
    ts = TrainSettings(lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    lrs = [lr_at(s, ts, 110) for s in range(120)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[60] == pytest.approx(0.55) and lrs[119] == pytest.approx(0.1)


@pytest.mark.parametrize("pieces, val_fraction", [(1, 0.2), (6, 0.0)], ids=["one piece", "val_fraction 0"])
def test_without_validation_pieces_training_runs_every_epoch_and_says_so_once(tmp_path, capsys, pieces, val_fraction):
    lines: list[str] = []
    settings = tiny(tmp_path, epochs=4, patience=2, val_fraction=val_fraction)
    summary = fit(settings, pieces=make_pieces(pieces), show_progress=False, log=lines.append)
    assert summary["epochs"] == 4 and summary["stopped"] == "epochs"  # never "no improvement in 2 validations"
    assert summary["val_pieces"] == 0 and summary["best_val_loss"] is None
    assert sum("no validation pieces" in line for line in lines) == 1, lines
    assert not any(re.search(r"no improvement|\b(inf|nan)\b", line) for line in lines), lines
    assert load_checkpoint(tmp_path / "m.pt").train["step"] == summary["steps"]  # the best file is the last model
    # Nothing it wrote prints as NaN or Infinity in JSON (JSON has neither).
    assert main(["info", str(tmp_path / "m.pt"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out, parse_constant=lambda name: pytest.fail(f"{name} in info --json"))
    assert info["best_val_loss"] is None and info["val_loss"] is None


def test_threads_follow_the_cpu_affinity_not_the_core_count(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)  # e.g. a container given 4 cores
    try:
        assert set_threads(0, Dist()) == 2 and torch.get_num_threads() == 2  # half the usable cores
        assert set_threads(0, Dist(0, 4, 0)) == 1  # never fewer than one
        assert set_threads(3, Dist()) == 3  # as asked
    finally:
        torch.set_num_threads(before)


def weights_of(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).weights


def stop_at(monkeypatch, step: int) -> None:
    """Behave as if Ctrl-C arrived while step `step` was running."""
    real = train_mod.train_step

    def step_then_signal(*args, **kwargs):
        result = real(*args, **kwargs)
        if not hasattr(step_then_signal, "count"):
            step_then_signal.count = 0
        step_then_signal.count += 1
        if step_then_signal.count == step:
            os.kill(os.getpid(), signal.SIGINT)  # the real signal: the loop must finish the step, save, stop
        return result

    monkeypatch.setattr(train_mod, "train_step", step_then_signal)


def test_resume_after_ctrl_c_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    pieces = make_pieces(16)
    kw = dict(epochs=3, transpose=4, tempo_stretch=0.1, crop=0.3)
    straight = tmp_path / "straight"
    fit(tiny(straight, **kw), pieces=pieces, show_progress=False, log=quiet)
    broken = tmp_path / "broken"
    settings = tiny(broken, **kw)
    with monkeypatch.context() as m:
        stop_at(m, 5)  # mid-epoch: there are more than 5 steps in an epoch here
        with pytest.raises(KeyboardInterrupt):
            fit(settings, pieces=pieces, show_progress=False, log=quiet)
    stopped = load_checkpoint(last_path(broken / "m.pt"))
    assert stopped.train["step"] == 5 and stopped.resume["progress"]["batch"] == 5
    fit(settings, resume=True, pieces=pieces, show_progress=False, log=quiet)
    a, b = weights_of(last_path(straight / "m.pt")), weights_of(last_path(broken / "m.pt"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    ha = load_checkpoint(straight / "m.pt").train["history"]
    hb = load_checkpoint(broken / "m.pt").train["history"]
    assert [(h["step"], h["val_loss"]) for h in ha] == [(h["step"], h["val_loss"]) for h in hb]


def test_hard_interrupt_mid_epoch_leaves_valid_checkpoints(tmp_path, monkeypatch):
    pieces = make_pieces(16)
    settings = tiny(tmp_path, epochs=3, val_every=3, patience=0, chunking="pieces", crop=0.3)
    real = train_mod.train_step
    calls = []

    def explode(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt  # e.g. a second Ctrl-C: no chance to save
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "train_step", explode)
    with pytest.raises(KeyboardInterrupt):
        fit(settings, pieces=pieces, show_progress=False, log=quiet)
    assert load_checkpoint(tmp_path / "m.pt").train["step"] == 3
    assert load_checkpoint(last_path(tmp_path / "m.pt")).train["step"] == 3
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left
    monkeypatch.setattr(train_mod, "train_step", real)
    summary = fit(settings, resume=True, pieces=pieces, show_progress=False, log=quiet)
    assert summary["epochs"] == 3


# ---- the command ---------------------------------------------------------------------------------


def write_midi_folder(folder: Path, n: int = 10) -> Path:
    """Small MIDI files of arpeggios, written with mido."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        mid = mido.MidiFile(ticks_per_beat=96)
        track = mido.MidiTrack()
        mid.tracks.append(track)
        root = int(rng.integers(48, 72))
        for k in range(int(rng.integers(12, 30))):
            pitch = root + int(rng.choice([0, 4, 7, 12]))
            track.append(mido.Message("note_on", note=pitch, velocity=int(rng.integers(50, 110)), time=0))
            track.append(mido.Message("note_off", note=pitch, velocity=0, time=int(rng.choice([48, 96]))))
        mid.save(folder / f"song{i:02d}.mid")
    return folder


TINY_SETS = [
    "--set", "model.hidden_size=16", "--set", "model.embed_dim=8", "--set", "model.num_layers=1",
    "--set", "train.batch_size=2", "--set", "train.chunk_len=16", "--set", "train.threads=1",
    "--set", "train.warmup_steps=2", "--set", "corpus.workers=1",
]  # fmt: skip


def test_command_json_summary(tmp_path, capsys):
    data = write_midi_folder(tmp_path / "midi")
    (data / "broken.mid").write_bytes(b"junk")  # skipped, said with its reason, and training goes on
    out = tmp_path / "out" / "model.pt"
    sets = TINY_SETS + ["--set", f"corpus.cache_dir={tmp_path / 'cache'}"]
    code = main(["train", "--data", str(data), "--out", str(out), "--epochs", "2", "--seed", "3", "--json", *sets])
    assert code == 0
    captured = capsys.readouterr()
    assert f"skipped 1 of {len(list(data.iterdir()))} files:\n  {data / 'broken.mid'}: not a MIDI file" in captured.err
    assert "is a small corpus: fine-tuned from a voice it learns far better (--from base)" in captured.err
    summary = json.loads(captured.out)
    assert {"steps", "train_loss", "val_loss", "checkpoint", "best_val_loss", "epochs", "events_per_s", "seconds", "device", "unigram_val_loss"} <= set(summary)
    assert summary["checkpoint"] == str(out) and summary["epochs"] == 2 and summary["device"] == "cpu"
    ckpt = load_checkpoint(out)
    assert ckpt.train["data"] == [str(data)] and ckpt.train["settings"]["seed"] == 3
    assert all(name.startswith(str(data)) for name in ckpt.heldout)
    # --resume of a finished run with more epochs carries on from where it ended.
    code = main(["train", "--data", str(data), "--out", str(out), "--epochs", "3", "--resume", "--json", *sets])
    assert code == 0 and json.loads(capsys.readouterr().out)["epochs"] == 3


def test_fine_tuning_starts_from_the_models_weights_and_network(tmp_path, capsys):
    data = write_midi_folder(tmp_path / "midi")
    sets = TINY_SETS + ["--set", f"corpus.cache_dir={tmp_path / 'cache'}"]
    first = tmp_path / "first.pt"
    assert main(["train", "--data", str(data), "--out", str(first), "--epochs", "8", "--json", *sets, "--set", "train.lr=0.02"]) == 0
    trained = json.loads(capsys.readouterr().out)
    # Another network size on the command line is ignored: fine-tuning keeps the model's network.
    tuned = tmp_path / "tuned.pt"
    args = ["train", "--data", str(data), "--out", str(tuned), "--epochs", "1", "--json", *sets, "--set", "model.hidden_size=24", "--set", "train.finetune_lr=0.0001"]
    assert main([*args, "--from", str(first)]) == 0
    captured = capsys.readouterr()
    assert "small corpus" not in captured.err
    summary = json.loads(captured.out)
    ckpt = load_checkpoint(tuned)
    assert ckpt.model_settings.hidden_size == 16 and ckpt.train["from"]["path"] == str(first)
    # It begins where the first model ended (a tiny learning rate barely moves it); from scratch it does not.
    assert abs(summary["best_val_loss"] - trained["best_val_loss"]) < 0.1
    assert main([*args, "--out", str(tmp_path / "scratch.pt")]) == 0
    scratch = json.loads(capsys.readouterr().out)
    assert scratch["best_val_loss"] > trained["best_val_loss"] + 0.5, (scratch["best_val_loss"], trained["best_val_loss"])


def test_fine_tuning_from_a_shipped_voice_that_has_only_its_npz(tmp_path, capsys, monkeypatch):
    """A wheel ships the playing weights (.npz) alone: `--from base` rebuilds the torch network
    from them and starts where the base ended."""
    import shutil

    import improv.model.voices

    data = write_midi_folder(tmp_path / "midi")
    sets = TINY_SETS + ["--set", f"corpus.cache_dir={tmp_path / 'cache'}"]
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "first.pt"), "--epochs", "8", "--json", *sets, "--set", "train.lr=0.02"]) == 0
    trained = json.loads(capsys.readouterr().out)
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    shutil.copy(tmp_path / "first.npz", shipped / "base.npz")  # no base.pt beside it
    monkeypatch.setattr(improv.model.voices, "shipped_folder", lambda: shipped)
    tuned = tmp_path / "tuned.pt"
    assert main(["train", "--data", str(data), "--out", str(tuned), "--epochs", "1", "--json", "--from", "base", *sets, "--set", "train.finetune_lr=0.0001"]) == 0
    summary = json.loads(capsys.readouterr().out)
    ckpt = load_checkpoint(tuned)
    assert ckpt.train["from"]["name"] == "base" and ckpt.train["from"]["path"] == str(shipped / "base.npz")
    assert ckpt.train["from"]["best_val_loss"] == pytest.approx(trained["best_val_loss"])
    assert abs(summary["best_val_loss"] - trained["best_val_loss"]) < 0.1  # where the base ended


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "{tmp}/nope"], "no such file or folder: {tmp}/nope"),
        (["--data", "{tmp}/junk"], "no usable pieces in {tmp}/junk; skipped {tmp}/junk/broken.mid: "),
        (["--data", "{tmp}/midi", "--resume"], "nothing to resume: {tmp}/m.last.pt does not exist"),
        (["--data", "{tmp}/midi", "--device", "tpu"], "bad value for train.device: 'tpu'"),
        pytest.param(
            ["--data", "{tmp}/midi", "--device", "cuda"],
            "device 'cuda' asked for, but torch sees no CUDA GPU",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU"),
        ),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, capsys, args, message):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "broken.mid").write_bytes(b"MThd not really")
    write_midi_folder(tmp_path / "midi", n=2)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code = main(["train", *args, "--out", str(tmp_path / "m.pt"), "--set", f"corpus.cache_dir={tmp_path / 'cache'}", "--set", "corpus.workers=1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message.replace("{tmp}", str(tmp_path)) in err
    assert err.startswith("improv: error: ") and "\n" not in err


def test_an_output_that_cannot_be_written_fails_before_training(tmp_path, capsys, monkeypatch):
    data = write_midi_folder(tmp_path / "midi", n=2)
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    monkeypatch.setattr(train_mod, "train_step", lambda *a, **k: pytest.fail("trained before finding the output unwritable"))
    outs = [blocker / "m.pt"] + ([Path("/proc/x.pt")] if Path("/proc/self").exists() else [])
    for out in outs:
        code = main(["train", "--data", str(data), "--out", str(out), *TINY_SETS, "--set", f"corpus.cache_dir={tmp_path / 'cache'}"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.startswith(f"improv: error: cannot write {out}") and "\n" not in err, err


@pytest.mark.parametrize(
    "error, said",
    [
        (OSError(28, "No space left on device"), "No space left on device"),
        # What torch.save raises on a full disk: a RuntimeError, not an OSError.
        (RuntimeError("[enforce fail at inline_container.cc:626] . PytorchStreamWriter failed writing file data/3: file write failed"), "PytorchStreamWriter failed writing file"),
    ],
)
def test_a_failed_save_is_a_one_line_error(tmp_path, monkeypatch, error, said):
    import improv.model.checkpoint

    def disk_full(path, ckpt, **kw):
        raise error

    monkeypatch.setattr(improv.model.checkpoint, "save_checkpoint", disk_full)
    with pytest.raises(ImprovError, match=rf"cannot write checkpoint .*m\.pt: .*{said}"):
        fit(tiny(tmp_path, epochs=1), pieces=make_pieces(6), show_progress=False, log=quiet)


def test_two_process_distributed_run(tmp_path):
    data = write_midi_folder(tmp_path / "midi", n=8)
    out = tmp_path / "ddp.pt"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "improv", "train", "--data", str(data), "--out", str(out), "--epochs", "2", "--json",
        *TINY_SETS, "--set", f"corpus.cache_dir={tmp_path / 'cache'}",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    if done.returncode != 0:
        # Seen twice in ~10 full-suite runs on a loaded 2-core machine (never alone, 10 of 10): the
        # launcher's two workers fail to meet. One more try, and the first failure stays visible.
        import warnings

        warnings.warn(f"the two-process run failed once, tried again: {done.stderr[-1500:]}", stacklevel=1)
        for left in (out, last_path(out)):  # a run that got as far as saving must not block the retry
            left.unlink(missing_ok=True)
        done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    summaries = [json.loads(part) for part in _json_objects(done.stdout)]
    assert len(summaries) == 1  # only rank 0 prints
    ckpt = load_checkpoint(out)
    assert ckpt.train["processes"] == 2 and ckpt.train["step"] == summaries[0]["steps"] > 0
    assert load_checkpoint(last_path(out)).resume["world"] == 2


def _json_objects(text: str) -> list[str]:
    """The top-level JSON objects printed on stdout (each pretty-printed over several lines)."""
    objects, depth, start = [], 0, None
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                objects.append(text[start : i + 1])
    return objects


def test_early_stopping_stops_after_patience_validations_without_improvement(tmp_path, monkeypatch):
    import improv.training.loop as loop_mod

    losses = iter([3.0, 2.5, 2.6, 2.7, 2.55, 2.9, 2.0, 1.0])  # best at the 2nd, then 3 worse in a row
    monkeypatch.setattr(loop_mod, "validation_loss", lambda run: (next(losses), [0.0] * 4))
    lines: list[str] = []
    summary = fit(tiny(tmp_path, epochs=8, patience=3), pieces=make_pieces(6), show_progress=False, log=lines.append)
    assert summary["epochs"] == 5 and summary["stopped"] == "early stopping"  # validations 3, 4, 5 did not improve on 2.5
    assert summary["best_val_loss"] == 2.5 and load_checkpoint(tmp_path / "m.pt").train["epoch"] == 2
    assert any("early stopping: no improvement in 3 validations" in line for line in lines)


def test_max_steps_stops_at_exactly_that_step_and_the_schedule_ends_there(tmp_path):
    summary = fit(tiny(tmp_path, epochs=50, max_steps=7, warmup_steps=2), pieces=make_pieces(6), show_progress=False, log=quiet)
    assert summary["steps"] == 7 and summary["stopped"] == "max_steps"
    last = load_checkpoint(last_path(tmp_path / "m.pt"))
    assert last.train["step"] == 7 and last.resume["progress"]["total_steps"] == 7  # the cosine decays over 7 steps, not 50 epochs


def test_train_never_silently_replaces_a_model(tmp_path, capsys):
    data = write_midi_folder(tmp_path / "midi", n=4)
    out = tmp_path / "m.pt"
    out.write_bytes(b"a model worth keeping")
    args = ["train", "--data", str(data), "--out", str(out), *TINY_SETS, "--max-steps", "1", "--set", f"corpus.cache_dir={tmp_path / 'cache'}"]
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == f"improv: error: {out} already exists: --resume continues its run, --force trains a new model over it (or pick another --out)"
    assert out.read_bytes() == b"a model worth keeping"
    assert main([*args, "--force"]) == 0 and load_checkpoint(out).train["step"] == 1
