"""Voices: the models improv ships (``checkpoints/`` in the repository, ``improv.checkpoints`` in
an installed package), found by name, and the one way every command finds the model it plays.

A voice is a model file pair ``NAME.pt`` (torch: training, evaluation) and ``NAME.npz`` (numpy:
what plays). ``--voice NAME`` names a shipped voice, ``--checkpoint FILE`` any file (``.pt`` or
``.npz``); with neither, ``voice.default`` (a name or a file). The live path loads the ``.npz``
and never imports torch; a ``.pt`` with no ``.npz`` beside it is read with torch when torch is
there (a model from an older improv), else it is a one-line error saying what to do.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path
from typing import Any

from improv.errors import TORCH_HINT, CheckpointError
from improv.model.weights import (
    SUFFIX,
    ModelFile,
    load_weights,
    read_meta,
    weights_path,
)

CHECKPOINT_SUFFIX = ".pt"
BASE = "base"  # the model every shipped voice was fine-tuned from


def shipped_folder() -> Path:
    """Where the shipped voices lie (inside the installed package, or the checkout's checkpoints/)."""
    return Path(str(files("improv.checkpoints")))


def voice_names() -> list[str]:
    """The shipped voices, by name (the base model last: it is where voices come from)."""
    names = sorted(p.stem for p in shipped_folder().glob(f"*{SUFFIX}"))
    return [n for n in names if n != BASE] + [n for n in names if n == BASE]


def voice_path(name: str) -> Path:
    """The torch-free file of the shipped voice ``name``; an unknown name lists the known ones."""
    path = shipped_folder() / f"{name}{SUFFIX}"
    if not path.is_file():
        known = ", ".join(voice_names()) or "none are installed"
        raise CheckpointError(f"no voice named {name!r} (voices: {known}; `improv voices` describes them)")
    return path


def model_location(voice: str | None, checkpoint: str | None, default: str) -> Path:
    """The model a command plays: ``--checkpoint FILE``, else ``--voice NAME``, else ``default``
    (``voice.default``: a voice's name, or a file when it looks like a path)."""
    if checkpoint and voice:
        raise CheckpointError("give --voice or --checkpoint, not both")
    if checkpoint:
        return _existing(Path(checkpoint).expanduser())
    if voice:
        return voice_path(voice)
    if _is_path(default):
        return _existing(Path(default).expanduser())
    return voice_path(default)


def _is_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.endswith((SUFFIX, CHECKPOINT_SUFFIX))


def _existing(path: Path) -> Path:
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path} (train one with `improv train --out {path}`, or pick a voice: `improv voices`)")
    return path


def training_checkpoint(path: str | os.PathLike[str]) -> Path:
    """The torch checkpoint of a model (its full training record): the ``.pt`` beside a ``.npz``
    when there is one, else the file itself."""
    path = Path(path)
    beside = path.with_suffix(CHECKPOINT_SUFFIX)
    return beside if path.suffix == SUFFIX and beside.is_file() else path


def load_player(path: str | os.PathLike[str]) -> ModelFile:
    """The model to play, torch-free: the ``.npz`` itself or the one beside a ``.pt``; a ``.pt``
    alone goes through torch when it is installed."""
    path = Path(path)
    if path.suffix == SUFFIX:
        return load_weights(path)
    beside = weights_path(path)
    if beside.is_file():
        model = load_weights(beside)
        model.path = str(path)
        return model
    try:
        from improv.model.checkpoint import load_checkpoint
    except ImportError:
        raise CheckpointError(f"{path} has no torch-free weights beside it ({beside.name}), and torch is not installed to read it: retrain it with this improv, or {TORCH_HINT}") from None
    return load_checkpoint(path).model_file()


def describe_voices() -> list[dict[str, Any]]:
    """Every shipped voice as plain data (for `improv voices`)."""
    out = []
    for name in voice_names():
        path = shipped_folder() / f"{name}{SUFFIX}"
        meta = read_meta(path)
        info, model = meta.get("info", {}), meta.get("model_settings", {})
        texture = info.get("texture") or {}
        out.append(
            {
                "name": name,
                "path": str(path),
                "checkpoint": str(path.with_suffix(CHECKPOINT_SUFFIX)) if path.with_suffix(CHECKPOINT_SUFFIX).exists() else None,
                "cell": model.get("cell"),
                "size": f"{model.get('num_layers')}x{model.get('hidden_size')}",
                "megabytes": round(path.stat().st_size / 1e6, 1),
                "corpus": list(info.get("data", [])),
                "texture": texture.get("label", ""),
                "notes_per_onset": texture.get("notes_per_onset"),
                "heldout_nll": info.get("best_val_loss"),
                "heldout_pieces": info.get("heldout_count"),
                "train_pieces": info.get("train_pieces_count"),
                "from": (info.get("from") or {}).get("name"),
            }
        )
    return out
