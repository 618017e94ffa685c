"""Checkpoints: self-describing, atomic, safe to load, one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from support.needs_torch import torch_or_skip

torch = torch_or_skip()  # the whole module trains or reads .pt files: skipped, saying how to get torch, without it

from improv.cli.main import main
from improv.errors import CheckpointError
from improv.model.checkpoint import (
    describe,
    load_checkpoint,
    save_checkpoint,
    untrained_checkpoint,
)
from improv.model.sampling import SamplingParams
from improv.music.tokenizer import Tokenizer
from improv.settings.sections import ModelSettings, Settings, TokenizerSettings

SMALL = Settings(model=ModelSettings(embed_dim=8, hidden_size=16, num_layers=1))


def test_round_trip_rebuilds_model_and_step_model(tmp_path):
    ckpt = untrained_checkpoint(SMALL.model, seed=4)
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
    save_checkpoint(tmp_path / "t.pt", untrained_checkpoint(settings.model, settings.tokenizer))
    loaded = load_checkpoint(tmp_path / "t.pt")
    assert loaded.tokenizer.sizes[3] == 4 and loaded.tokenizer.settings.max_beats == 8.0


def test_save_is_atomic_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    save_checkpoint(path, untrained_checkpoint(SMALL.model, seed=1))
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, untrained_checkpoint(SMALL.model, seed=2))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary left behind


def test_bad_files_are_one_line_errors(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(good, untrained_checkpoint(SMALL.model))
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
    save_checkpoint(path, untrained_checkpoint(SMALL.model))
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "v99.pt")
    with pytest.raises(CheckpointError, match="format version 99; this improv reads version 2"):
        load_checkpoint(tmp_path / "v99.pt")
    payload["format_version"] = 2
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
    save_checkpoint(path, untrained_checkpoint(SMALL.model))
    assert main(["info", str(path), "--json"]) == 0
    out = capsys.readouterr().out
    assert '"hidden_size": 16' in out and '"untrained": true' in out
    assert main(["info", str(tmp_path / "nope.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"improv: error: checkpoint not found: {tmp_path / 'nope.pt'} (train one with")
    assert describe(load_checkpoint(path))["vocabulary"]["pitch"] == 130


def test_a_changed_weight_or_a_diverged_model_is_refused(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, untrained_checkpoint(SMALL.model))
    payload = torch.load(path, weights_only=True)
    payload["weights"]["head_hidden.bias"][3] += 1e-3  # one weight changed: the hash no longer fits
    torch.save(payload, tmp_path / "changed.pt")
    with pytest.raises(CheckpointError, match="do not match their SHA-256"):
        load_checkpoint(tmp_path / "changed.pt")
    nan = untrained_checkpoint(SMALL.model)
    nan.weights["head_hidden.bias"][0] = float("nan")  # hashed as it is: only the finite check can catch it
    save_checkpoint(tmp_path / "nan.pt", nan, with_weights_file=True)
    for bad in ("nan.pt", "nan.npz"):
        with pytest.raises(CheckpointError, match="not finite numbers .*refused"):
            load_checkpoint(tmp_path / bad)


def test_the_weights_file_plays_exactly_as_the_torch_model(tmp_path):
    from improv.model.weights import load_weights

    ckpt = untrained_checkpoint(SMALL.model, seed=5)
    save_checkpoint(tmp_path / "m.pt", ckpt, with_weights_file=True)
    model = load_weights(tmp_path / "m.npz")
    assert model.model_settings == ckpt.model_settings and model.tokenizer == ckpt.tokenizer
    net = ckpt.build_model().eval()
    step = model.step_model()
    rows = torch.tensor([[[128, 0, 0, 0], [60, 0, 12, 4], [64, 0, 12, 4], [67, 12, 6, 5], [72, 6, 6, 3]]])
    with torch.no_grad():
        h, _ = net.hidden(rows)
        logits = net.heads(h, torch.roll(rows, -1, dims=1))
    state = step.initial_state()
    for t in range(rows.shape[1]):
        state = step.step(state, rows[0, t].tolist())
        theirs = step.event_logits(state, rows[0, (t + 1) % rows.shape[1]].tolist())
        for field in range(4):
            assert np.allclose(theirs[field], logits[field][0, t].numpy(), atol=1e-5)


@pytest.mark.parametrize("damage", ["flip", "truncate", "pickle", "meta"])
def test_a_damaged_weights_file_is_one_line(tmp_path, damage):
    import zipfile

    from improv.model.weights import load_weights

    save_checkpoint(tmp_path / "m.pt", untrained_checkpoint(SMALL.model), with_weights_file=True)
    path = tmp_path / "m.npz"
    if damage == "flip":  # one weight's bytes changed inside the archive (its CRC rewritten, as a careful forger would)
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays["head_hidden.bias"] = arrays["head_hidden.bias"].copy()
        arrays["head_hidden.bias"][0] += 1.0
        np.savez(path, **arrays)
        expected = "SHA-256"
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:500])
        expected = "not a readable improv weights file"
    elif damage == "pickle":
        np.savez(path, meta=np.array([{"format": "improv-weights"}], dtype=object))
        expected = "not a readable improv weights file"
    else:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("x.npy", b"junk")
        expected = "not an improv weights file"
    with pytest.raises(CheckpointError, match=expected) as info:
        load_weights(path)
    assert "\n" not in str(info.value)
