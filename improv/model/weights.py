"""The torch-free model file (``NAME.npz``, beside every ``NAME.pt`` that `improv train` writes):
what `serve`, `demo` and `generate` load, with numpy alone.

It holds the weights (named as ``ImprovNet.state_dict()``), and one JSON entry, ``meta``: the
format and its version, the model settings, the tokenizer (its whole vocabulary), what the model is
(its training data, held-out loss, texture, the model it was fine-tuned from) and a SHA-256 of the
weights. It is read with ``allow_pickle=False``: no object in it can run code. Loading checks, in
one line each: the format, the version, the vocabulary, that the weights are exactly those the
settings describe, the hash (a flipped bit is refused), and that every value is finite.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from improv import __version__
from improv.errors import CheckpointError, ConfigError
from improv.io.files import write_atomic
from improv.model.step_model import StepModel, weight_shapes
from improv.music.tokenizer import Tokenizer
from improv.settings.load import section_from_dict
from improv.settings.sections import ModelSettings

FORMAT = "improv-weights"
FORMAT_VERSION = 1
SUFFIX = ".npz"
_META = "meta"


@dataclass
class ModelFile:
    """A model as the live path sees it: settings, vocabulary, weights and what it is."""

    model_settings: ModelSettings
    tokenizer: Tokenizer
    arrays: dict[str, np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)  # see ``model_info``
    path: str = ""

    def step_model(self) -> StepModel:
        s = self.model_settings
        return StepModel(self.arrays, s.cell, s.num_layers, s.conditional_heads, self.tokenizer)

    @property
    def name(self) -> str:
        return Path(self.path).stem if self.path else "model"


def weights_path(path: str | os.PathLike[str]) -> Path:
    """``model.pt`` -> ``model.npz``: the torch-free file beside a checkpoint."""
    return Path(path).with_suffix(SUFFIX)


def expected_shapes(model_settings: ModelSettings, tokenizer: Tokenizer) -> dict[str, tuple[int, ...]]:
    s = model_settings
    return weight_shapes(s.cell, s.hidden_size, s.num_layers, s.embed_dim, s.conditional_heads, tokenizer.sizes)


def weights_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over every weight (name, dtype, shape, bytes, in name order): the content hash."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def check_weights(arrays: Mapping[str, np.ndarray], shapes: Mapping[str, tuple[int, ...]], where: str) -> None:
    """Exactly the weights the settings describe, every value finite; else one ``CheckpointError``."""
    got = {k: tuple(v.shape) for k, v in arrays.items()}
    if got != dict(shapes):
        missing = sorted(set(shapes) - set(got))
        wrong = sorted(k for k in set(shapes) & set(got) if shapes[k] != got[k])
        detail = f"missing {missing[:3]}" if missing else f"wrong shape {wrong[:3]}" if wrong else f"unexpected {sorted(set(got) - set(shapes))[:3]}"
        raise CheckpointError(f"{where} is damaged: weights do not match its model settings ({detail})")
    bad = sorted(k for k, v in arrays.items() if not np.isfinite(v).all())
    if bad:
        raise CheckpointError(f"{where} holds weights that are not finite numbers ({bad[0]}, ...): a diverged or damaged model; refused")


def model_info(record: Mapping[str, Any]) -> dict[str, Any]:
    """What a model is, from a training record: the part worth carrying to the live path."""
    keys = ("data", "best_val_loss", "val_loss", "unigram_val_loss", "texture", "from", "step", "epoch", "seconds", "device", "untrained")
    info = {k: record[k] for k in keys if k in record}
    for key in ("heldout", "train_pieces"):
        if key in record:
            info[f"{key}_count"] = len(record[key])
    if "heldout" in record:  # what the demo's performer plays: music the voice never trained on
        info["heldout"] = list(record["heldout"])
    return info


def save_weights(path: str | os.PathLike[str], model_settings: ModelSettings, tokenizer: Tokenizer, arrays: Mapping[str, np.ndarray], info: Mapping[str, Any] | None = None, created: str = "") -> None:
    """Write the torch-free file atomically (float32 weights, the meta entry with the hash)."""
    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "improv_version": __version__,
        "created": created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model_settings": asdict(model_settings),
        "tokenizer": tokenizer.to_dict(),
        "info": dict(info or {}),
        "sha256": weights_digest(arrays),
    }
    blob = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    write_atomic(path, lambda handle: np.savez(handle, **{_META: blob}, **arrays), clean=True)


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The meta entry alone (cheap: the weights are not read), checked for format and version."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if _META not in npz.files:
                raise CheckpointError(f"{path} is not an improv weights file (no meta entry)")
            meta = json.loads(npz[_META].tobytes())
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"model not found: {path}") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not a readable improv weights file ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an improv weights file")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has weights format version {meta.get('format_version')}; this improv reads version {FORMAT_VERSION}")
    return meta


def load_weights(path: str | os.PathLike[str]) -> ModelFile:
    """Load and check a weights file; any problem is one ``CheckpointError`` line."""
    meta = read_meta(path)
    try:
        model_settings = section_from_dict(ModelSettings, dict(meta["model_settings"]), "model")
        tokenizer = Tokenizer.from_dict(meta["tokenizer"])
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files if name != _META}
    except (KeyError, TypeError, ConfigError) as exc:
        raise CheckpointError(f"{path} is damaged: {exc}") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise CheckpointError(f"{path} is truncated or damaged ({type(exc).__name__})") from None
    check_weights(arrays, expected_shapes(model_settings, tokenizer), str(path))
    if weights_digest(arrays) != meta.get("sha256"):
        raise CheckpointError(f"{path} is damaged: its weights do not match their SHA-256 (a changed or corrupted file); refused")
    return ModelFile(model_settings, tokenizer, arrays, dict(meta.get("info") or {}), str(path))
