"""Tiny untrained models written without torch (``NAME.npz``, what the live path plays), so the
tests of playing, the demo and generation run where torch is not installed."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from improv.model.step_model import random_weights
from improv.model.weights import save_weights
from improv.music.tokenizer import Tokenizer
from improv.settings.sections import ModelSettings, TokenizerSettings


def write_random_model(path: str | Path, model: ModelSettings, tokenizer: TokenizerSettings | None = None, seed: int = 0, bias: Mapping[str, Mapping[int, float]] | None = None, info: Mapping[str, object] | None = None) -> Path:
    """An untrained model's ``.npz`` at ``path`` (its suffix made ``.npz``); ``bias`` adds to
    chosen entries of named weights (``{"head_out.0.bias": {0: 3.0}}``); ``info`` is what the file
    says the model is (``heldout``: the pieces the demo plays). Returns the file."""
    tok = Tokenizer(tokenizer or TokenizerSettings())
    arrays = random_weights(tok, model.hidden_size, model.num_layers, model.embed_dim, model.cell, model.conditional_heads, seed)
    for name, entries in (bias or {}).items():
        for index, value in entries.items():
            arrays[name][index] += value
    out = Path(path).with_suffix(".npz")
    save_weights(out, model, tok, arrays, {"untrained": True, "seed": seed, **(info or {})})
    return out
