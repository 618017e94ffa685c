"""The training checkpoint (``NAME.pt``): one self-describing file, saved atomically, loaded safely.

It holds everything needed to go on training or to evaluate with no other file: the weights, the
model settings, the tokenizer's settings and its whole vocabulary, the training settings and
history, the held-out pieces, a SHA-256 of the weights and a format version; ``NAME.last.pt`` adds
the resume state (optimiser, random states, position). (The seed tutorials pickled the
vocabulary apart from the weights, and rebuilt it from the data at generation time.) What plays
live is the torch-free ``NAME.npz`` beside it (``model.weights``).

Saving writes a temporary file beside the target and renames it over the target, so Ctrl-C or a
kill at any moment leaves either the old checkpoint or the new one, never half of one. Loading uses
``torch.load(..., weights_only=True)``: a checkpoint from the internet cannot run code. A missing,
truncated, foreign, altered (hash) or diverged (non-finite) file, or one of another format
version, is a one-line ``CheckpointError``. ``load_checkpoint`` also reads a ``.npz`` (its
weights as tensors), so evaluation and fine-tuning take either file.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from improv import __version__
from improv.errors import CheckpointError, ConfigError
from improv.io.files import write_atomic
from improv.model.step_model import StepModel
from improv.model.weights import SUFFIX as WEIGHTS_SUFFIX
from improv.model.weights import (
    ModelFile,
    check_weights,
    expected_shapes,
    load_weights,
    model_info,
    save_weights,
    weights_digest,
)
from improv.music.tokenizer import Tokenizer
from improv.settings.load import section_from_dict
from improv.settings.sections import ModelSettings, TokenizerSettings

FORMAT = "improv-checkpoint"
FORMAT_VERSION = 2  # 2: the weights' SHA-256 is stored and checked


@dataclass
class Checkpoint:
    model_settings: ModelSettings
    tokenizer: Tokenizer
    weights: dict[str, torch.Tensor]
    # Training record: settings, data sources, step/epoch, losses, history, piece split.
    train: dict[str, Any] = field(default_factory=dict)
    # Resume state (optimiser, scheduler, random states); absent from exported models.
    resume: dict[str, Any] | None = None
    improv_version: str = __version__
    created: str = ""
    path: str = ""

    @property
    def heldout(self) -> list[str]:
        """Names of the pieces held out for validation (evaluate on these)."""
        return list(self.train.get("heldout", []))

    def build_model(self) -> Any:
        """The torch network with these weights (for training and batch evaluation)."""
        from improv.model.network import ImprovNet

        net = ImprovNet(self.model_settings, self.tokenizer.sizes)
        net.load_state_dict(self.weights)
        return net

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().float().numpy() for k, v in self.weights.items()}

    def model_file(self) -> ModelFile:
        return ModelFile(self.model_settings, self.tokenizer, self.arrays(), model_info(self.train), self.path)

    def step_model(self) -> StepModel:
        """The numpy step model for real time and generation."""
        return self.model_file().step_model()

    def parameter_count(self) -> int:
        return int(sum(t.numel() for t in self.weights.values()))


def save_checkpoint(path: str | os.PathLike[str], ckpt: Checkpoint, *, with_weights_file: bool = False) -> None:
    """Write ``ckpt`` to ``path`` atomically; with ``with_weights_file`` also the torch-free
    ``.npz`` beside it (what the live path loads)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu() for k, v in ckpt.weights.items()}
    created = ckpt.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "improv_version": ckpt.improv_version,
        "created": created,
        "model_settings": asdict(ckpt.model_settings),
        "tokenizer": ckpt.tokenizer.to_dict(),
        "weights": weights,
        "weights_sha256": weights_digest({k: v.float().numpy() for k, v in weights.items()}),
        "train": ckpt.train,
        "resume": ckpt.resume,
    }
    write_atomic(path, lambda handle: torch.save(payload, handle), clean=True)
    if with_weights_file:
        save_weights(path.with_suffix(WEIGHTS_SUFFIX), ckpt.model_settings, ckpt.tokenizer, ckpt.arrays(), model_info(ckpt.train), created)


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Load and validate a checkpoint (``.pt``, or the weights of a ``.npz``); any problem is one
    ``CheckpointError`` line."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}" if not path.exists() else f"checkpoint is not a file: {path}")
    if path.suffix == WEIGHTS_SUFFIX:
        return _from_weights_file(load_weights(path))
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != b"PK\x03\x04":  # torch.save writes a zip archive
        raise CheckpointError(f"{path} is not an improv checkpoint (not a torch file)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated, damaged or unsafe files
        if "weights only" in str(exc).lower():
            raise CheckpointError(f"{path} holds code or objects, not plain data; refused (a checkpoint must not run code)") from None
        reason = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} is truncated or damaged ({reason[:100]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an improv checkpoint")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {version}; this improv reads version {FORMAT_VERSION}")
    try:
        model_settings = section_from_dict(ModelSettings, dict(payload["model_settings"]), "model")
        tokenizer = Tokenizer.from_dict(payload["tokenizer"])
        weights = dict(payload["weights"])
        resume = payload.get("resume")
        if resume is not None and not isinstance(resume, dict):
            raise TypeError("the resume state is not a mapping")
    except (KeyError, TypeError, ConfigError) as exc:
        raise CheckpointError(f"{path} is damaged: {exc}") from None
    if not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise CheckpointError(f"{path} is damaged: a weight is not a tensor")
    arrays = {k: v.detach().float().numpy() for k, v in weights.items()}
    check_weights(arrays, expected_shapes(model_settings, tokenizer), str(path))
    if weights_digest(arrays) != payload.get("weights_sha256"):
        raise CheckpointError(f"{path} is damaged: its weights do not match their SHA-256 (a changed or corrupted file); refused")
    return Checkpoint(
        model_settings=model_settings,
        tokenizer=tokenizer,
        weights=weights,
        train=dict(payload.get("train") or {}),
        resume=resume,
        improv_version=str(payload.get("improv_version", "")),
        created=str(payload.get("created", "")),
        path=str(path),
    )


def _from_weights_file(model: ModelFile) -> Checkpoint:
    weights = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in model.arrays.items()}
    return Checkpoint(model.model_settings, model.tokenizer, weights, train=dict(model.info), path=model.path)


def untrained_checkpoint(model: ModelSettings, tokenizer: TokenizerSettings | None = None, seed: int = 0) -> Checkpoint:
    """A checkpoint of a freshly initialised model (for tests, and to try `serve` before training)."""
    from improv.model.network import ImprovNet

    tok = Tokenizer(tokenizer or TokenizerSettings())
    torch.manual_seed(seed)
    net = ImprovNet(model, tok.sizes)
    return Checkpoint(model, tok, net.state_dict(), train={"untrained": True, "seed": seed})


def write_untrained_checkpoint(path: str | os.PathLike[str], model: ModelSettings, tokenizer: TokenizerSettings | None = None, seed: int = 0) -> Checkpoint:
    """An untrained model saved as `improv train` saves one: ``.pt`` and ``.npz`` beside it."""
    ckpt = untrained_checkpoint(model, tokenizer, seed)
    save_checkpoint(path, ckpt, with_weights_file=True)
    ckpt.path = str(path)
    return ckpt


def describe(ckpt: Checkpoint) -> dict[str, Any]:
    """What a checkpoint holds, as plain data (for `improv info`)."""
    train = ckpt.train
    info: dict[str, Any] = {
        "path": ckpt.path,
        "format_version": FORMAT_VERSION,
        "improv_version": ckpt.improv_version,
        "created": ckpt.created,
        "parameters": ckpt.parameter_count(),
        "model": asdict(ckpt.model_settings),
        "tokenizer": asdict(ckpt.tokenizer.settings),
        "vocabulary": dict(zip(("pitch", "offset", "duration", "velocity"), ckpt.tokenizer.sizes)),
        "resumable": ckpt.resume is not None,
    }
    for key in ("untrained", "data", "from", "texture", "step", "epoch", "train_loss", "val_loss", "best_val_loss", "unigram_val_loss", "events_per_s", "device", "seconds"):
        if key in train:
            info[key] = train[key]
    for key in ("train_pieces", "heldout"):
        if key in train:
            info[f"{key}_count"] = len(train[key])
        elif f"{key}_count" in train:
            info[f"{key}_count"] = train[f"{key}_count"]
    if "settings" in train:
        info["train_settings"] = train["settings"]
    return info
