"""The shipped voices: each loads torch-free and with torch, plays the same in both, says what it
is (`improv voices`), and is found by name from any folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.needs_torch import torch_or_skip

from improv.cli.main import main
from improv.errors import CheckpointError
from improv.model.voices import describe_voices, load_player, model_location, shipped_folder, voice_names

VOICES = voice_names()


def test_voices_are_shipped():
    assert VOICES, f"no voice in {shipped_folder()}"


@pytest.mark.parametrize("name", VOICES)
def test_a_shipped_voice_plays_the_same_from_both_files(name):
    torch = torch_or_skip()
    from improv.model.checkpoint import load_checkpoint

    path = model_location(name, None, "")
    player = load_player(path)  # the .npz: what serve, demo and generate load
    ckpt = load_checkpoint(path.with_suffix(".pt"))  # the .pt: what training and eval load
    assert player.model_settings == ckpt.model_settings and player.tokenizer == ckpt.tokenizer
    assert player.model_settings.cell == "lstm"
    step = player.step_model()
    net = ckpt.build_model().eval()
    rows = torch.tensor([[[128, 0, 0, 0], [60, 0, 12, 4], [64, 0, 12, 4], [67, 12, 6, 5], [72, 6, 6, 3], [71, 6, 12, 3]]])
    with torch.no_grad():
        h, _ = net.hidden(rows)
        logits = net.heads(h, torch.roll(rows, -1, dims=1))
    state = step.initial_state()
    for t in range(rows.shape[1] - 1):
        state = step.step(state, rows[0, t].tolist())
        ours = step.event_logits(state, rows[0, t + 1].tolist())
        for field in range(4):
            assert np.allclose(ours[field], logits[field][0, t].numpy(), atol=1e-4)


def test_improv_voices_lists_each_with_what_it_is(capsys):
    assert main(["voices", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [v["name"] for v in listed] == VOICES
    for v in listed:
        assert {"name", "path", "cell", "corpus", "texture", "heldout_nll"} <= set(v)
        assert v["corpus"] and v["heldout_nll"] is not None and v["megabytes"] <= 10
    assert main(["voices"]) == 0
    table = capsys.readouterr().out
    assert all(name in table for name in VOICES)


def test_an_unknown_voice_lists_the_known_ones():
    with pytest.raises(CheckpointError, match=r"no voice named 'nope' \(voices: "):
        model_location("nope", None, "folk")


def test_the_default_voice_is_found_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from improv.settings.sections import VoiceSettings

    assert model_location(None, None, VoiceSettings().default) == shipped_folder() / f"{VoiceSettings().default}.npz"


def test_describe_voices_reads_only_the_meta():
    for v in describe_voices():
        assert v["path"].endswith(".npz")
