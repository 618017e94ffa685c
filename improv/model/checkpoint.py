"""One self-describing checkpoint file: save atomically, load safely.

A checkpoint holds everything needed to use the model with no other file: the weights, the model
settings, the tokenizer's settings and its whole vocabulary, the training settings and history, the
held-out pieces, and a format version. (The seed tutorials pickled the vocabulary apart from the
weights, and rebuilt it from the data at generation time.)

Saving writes a temporary file beside the target and renames it over the target, so Ctrl-C or a
kill at any moment leaves either the old checkpoint or the new one, never half of one. Loading uses
``torch.load(..., weights_only=True)``: a checkpoint from the internet cannot run code. A missing,
truncated or foreign file, or one of another format version, is a one-line ``CheckpointError``.
"""

from __future__ import annotations

import datetime as _dt
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from improv import __version__
from improv.settings.sections import ModelSettings, Settings
from improv.settings.load import section_from_dict
from improv.errors import CheckpointError, ConfigError
from improv.model.step_model import StepModel
from improv.music.tokenizer import Tokenizer

FORMAT = "improv-checkpoint"
FORMAT_VERSION = 1


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

    def build_model(self):
        """The torch network with these weights (for training and batch evaluation)."""
        from improv.model.network import ImprovNet

        net = ImprovNet(self.model_settings, self.tokenizer.sizes)
        net.load_state_dict(self.weights)
        return net

    def step_model(self) -> StepModel:
        """The numpy step model for real time and generation."""
        s = self.model_settings
        return StepModel(numpy_weights(self), s.cell, s.num_layers, s.conditional_heads, self.tokenizer)

    def parameter_count(self) -> int:
        return int(sum(t.numel() for t in self.weights.values()))


def model_path(given: str | None, configured: str) -> Path:
    """The checkpoint a command uses: ``--checkpoint`` if given, else the configured one.

    The configured default (``checkpoints/default.pt``, relative) is looked up in the current
    folder first, then in the improv checkout the package runs from, so the shipped model works
    from any folder. A missing model is the first thing a new user meets: say how to get one.
    """
    path = Path(given or configured).expanduser()
    if not given and not path.is_absolute() and not path.exists():
        shipped = Path(__file__).resolve().parents[2] / path
        if shipped.exists():
            return shipped
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path} (train one with `improv train --out {path}`, or pass --checkpoint FILE)")
    return path


def save_checkpoint(path: str | os.PathLike[str], ckpt: Checkpoint) -> None:
    """Write ``ckpt`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "improv_version": ckpt.improv_version,
        "created": ckpt.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model_settings": asdict(ckpt.model_settings),
        "tokenizer": ckpt.tokenizer.to_dict(),
        "weights": {k: v.detach().cpu() for k, v in ckpt.weights.items()},
        "train": ckpt.train,
        "resume": ckpt.resume,
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; a checkpoint is an ordinary file
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Load and validate a checkpoint; any problem is one ``CheckpointError`` line."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}" if not path.exists() else f"checkpoint is not a file: {path}")
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
    except (KeyError, TypeError, ConfigError) as exc:
        raise CheckpointError(f"{path} is damaged: {exc}") from None
    ckpt = Checkpoint(
        model_settings=model_settings,
        tokenizer=tokenizer,
        weights=weights,
        train=dict(payload.get("train") or {}),
        resume=payload.get("resume"),
        improv_version=str(payload.get("improv_version", "")),
        created=str(payload.get("created", "")),
        path=str(path),
    )
    _check_weights(ckpt)
    return ckpt


def _check_weights(ckpt: Checkpoint) -> None:
    """The weights must be exactly those the settings describe (catches hand-edited files)."""
    from improv.model.network import ImprovNet

    with torch.device("meta"):  # shapes only, no memory, no initialisation cost
        expected = {k: tuple(v.shape) for k, v in ImprovNet(ckpt.model_settings, ckpt.tokenizer.sizes).state_dict().items()}
    got = {k: tuple(v.shape) for k, v in ckpt.weights.items() if isinstance(v, torch.Tensor)}
    if got != expected:
        missing = sorted(set(expected) - set(got))
        wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
        detail = f"missing {missing[:3]}" if missing else f"wrong shape {wrong[:3]}" if wrong else f"unexpected {sorted(set(got) - set(expected))[:3]}"
        raise CheckpointError(f"{ckpt.path} is damaged: weights do not match its model settings ({detail})")


def untrained_checkpoint(settings: Settings, seed: int = 0) -> Checkpoint:
    """A checkpoint of a freshly initialised model (for tests, and to try `serve` before training)."""
    from improv.model.network import ImprovNet

    tokenizer = Tokenizer(settings.tokenizer)
    torch.manual_seed(seed)
    net = ImprovNet(settings.model, tokenizer.sizes)
    return Checkpoint(settings.model, tokenizer, net.state_dict(), train={"untrained": True, "seed": seed})


def write_untrained_checkpoint(path: str | os.PathLike[str], settings: Settings, seed: int = 0) -> Checkpoint:
    ckpt = untrained_checkpoint(settings, seed)
    save_checkpoint(path, ckpt)
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
    for key in ("untrained", "data", "step", "epoch", "train_loss", "val_loss", "best_val_loss", "unigram_val_loss", "events_per_s", "device", "seconds"):
        if key in train:
            info[key] = train[key]
    for key in ("train_pieces", "heldout"):
        if key in train:
            info[f"{key}_count"] = len(train[key])
    if "settings" in train:
        info["train_settings"] = train["settings"]
    return info


def numpy_weights(ckpt: Checkpoint) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().float().numpy() for k, v in ckpt.weights.items()}
