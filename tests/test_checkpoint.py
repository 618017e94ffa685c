"""Checkpoints: self-describing, atomic, safe to load, one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from improv.model.checkpoint import describe, load_checkpoint, save_checkpoint, untrained_checkpoint
from improv.cli.main import main
from improv.settings.sections import ModelSettings, Settings, TokenizerSettings
from improv.errors import CheckpointError
from improv.model.sampling import SamplingParams
from improv.music.tokenizer import Tokenizer

SMALL = Settings(model=ModelSettings(embed_dim=8, hidden_size=16, num_layers=1))


def test_round_trip_rebuilds_model_and_step_model(tmp_path):
    ckpt = untrained_checkpoint(SMALL, seed=4)
    ckpt.train = {"heldout": ["a.mid", "b.mid"], "step": 12, "val_loss": 3.5}
    path = tmp_path / "m.pt"
    save_checkpoint(path, ckpt)
    loaded = load_checkpoint(path)
    assert loaded.model_settings == SMALL.model
    assert loaded.tokenizer == Tokenizer(SMALL.tokenizer)
    assert loaded.heldout == ["a.mid", "b.mid"]
    for key, value in ckpt.weights.items():
        assert torch.equal(value, loaded.weights[key])
    net = loaded.build_model()
    assert sum(p.numel() for p in net.parameters()) == loaded.parameter_count()
    a = ckpt.step_model().sample_event(ckpt.step_model().initial_state(), np.random.default_rng(1), SamplingParams())
    b = loaded.step_model().sample_event(loaded.step_model().initial_state(), np.random.default_rng(1), SamplingParams())
    assert a.tolist() == b.tolist()


def test_tokenizer_settings_travel_with_the_weights(tmp_path):
    settings = Settings(model=SMALL.model, tokenizer=TokenizerSettings(velocity_bins=4, max_beats=8.0))
    save_checkpoint(tmp_path / "t.pt", untrained_checkpoint(settings))
    loaded = load_checkpoint(tmp_path / "t.pt")
    assert loaded.tokenizer.sizes[3] == 4 and loaded.tokenizer.settings.max_beats == 8.0


def test_save_is_atomic_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    save_checkpoint(path, untrained_checkpoint(SMALL, seed=1))
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, untrained_checkpoint(SMALL, seed=2))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary left behind


def test_bad_files_are_one_line_errors(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(good, untrained_checkpoint(SMALL))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "text.pt"
    text.write_text("hello")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    cases = {
        tmp_path / "missing.pt": "checkpoint not found",
        tmp_path: "checkpoint is not a file",
        truncated: "is truncated or damaged",
        text: "is not an improv checkpoint (not a torch file)",
        foreign: "is not an improv checkpoint",
    }
    for path, message in cases.items():
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
        assert message in str(info.value) and "\n" not in str(info.value)


def test_other_format_version_and_damaged_weights(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, untrained_checkpoint(SMALL))
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "v99.pt")
    with pytest.raises(CheckpointError, match="format version 99; this improv reads version 1"):
        load_checkpoint(tmp_path / "v99.pt")
    payload["format_version"] = 1
    payload["weights"]["head_hidden.bias"] = torch.zeros(3)
    torch.save(payload, tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match="weights do not match its model settings"):
        load_checkpoint(tmp_path / "shape.pt")


def test_code_in_a_checkpoint_is_not_run(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "improv-checkpoint", "format_version": 1, "x": Evil()}, path)
    with pytest.raises(CheckpointError, match="holds code or objects, not plain data; refused") as info:
        load_checkpoint(path)
    assert "pwned" not in str(info.value)


def test_info_command(tmp_path, capsys):
    path = tmp_path / "m.pt"
    save_checkpoint(path, untrained_checkpoint(SMALL))
    assert main(["info", str(path), "--json"]) == 0
    out = capsys.readouterr().out
    assert '"hidden_size": 16' in out and '"untrained": true' in out
    assert main(["info", str(tmp_path / "nope.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"improv: error: checkpoint not found: {tmp_path / 'nope.pt'} (train one with")
    assert describe(load_checkpoint(path))["vocabulary"]["pitch"] == 130


def test_model_path_finds_the_shipped_default_from_any_folder(tmp_path, monkeypatch):
    from improv.model.checkpoint import model_path

    monkeypatch.chdir(tmp_path)
    shipped = Path(__file__).resolve().parent.parent / "checkpoints" / "default.pt"
    if shipped.exists():
        assert model_path(None, "checkpoints/default.pt") == shipped
    local = tmp_path / "checkpoints" / "default.pt"
    local.parent.mkdir()
    local.write_bytes(b"x")
    assert model_path(None, "checkpoints/default.pt") == Path("checkpoints/default.pt")  # the folder's own first
    with pytest.raises(CheckpointError, match="checkpoint not found: other.pt \\(train one with `improv train --out other.pt`"):
        model_path("other.pt", "checkpoints/default.pt")
