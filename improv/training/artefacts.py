"""What a training run leaves on disk: the best model (``NAME.pt`` and its torch-free ``NAME.npz``),
the last state to resume from (``NAME.last.pt``), and the loss plot (``NAME.loss.png``), each
written atomically; and the training record every checkpoint carries (keys pinned in DEVELOPERS.md).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from improv.errors import TrainError
from improv.io.files import write_atomic
from improv.training.distributed import gather
from improv.training.progress import Progress, Run
from improv.training.state import random_states, state_to_cpu

# torch is imported inside the functions that use it: `improv --help` stays fast.
if TYPE_CHECKING:  # for the signatures only

    from improv.model.network import State


def last_path(out: str | os.PathLike[str]) -> Path:
    """``model.pt`` -> ``model.last.pt``: the resumable checkpoint beside the best one."""
    out = Path(out)
    return out.with_name(f"{out.stem}.last{out.suffix or '.pt'}")


def plot_path(out: str | os.PathLike[str]) -> Path:
    out = Path(out)
    return out.with_name(f"{out.stem}.loss.png")


def training_record(run: Run, progress: Progress, val_loss: float, train_loss: float) -> dict[str, Any]:
    """The ``Checkpoint.train`` dict (keys pinned in DEVELOPERS.md)."""
    return {
        "data": list(run.ts.data),
        "texture": run.texture,
        **({"from": run.origin} if run.origin else {}),
        "heldout": [p.name for p in run.val],
        "train_pieces": [p.name for p in run.train],
        "settings": asdict(run.ts),
        "step": progress.step,
        "epoch": progress.epoch,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "best_val_loss": progress.best_val_loss,
        "unigram_val_loss": run.unigram,
        "history": list(progress.history),
        "device": str(run.device),
        "processes": run.dist.world,
        "seconds": round(progress.seconds, 1),
        "events_per_s": run.events_per_s(progress),
    }


def save(run: Run, path: Path, progress: Progress, val_loss: float, train_loss: float, resumable: bool, carry: State | None = None) -> None:
    """Write one checkpoint (collective in a distributed run: every rank must call it): the last
    one with its resume state, the best one with the torch-free weights file beside it."""
    from improv.model.checkpoint import Checkpoint, save_checkpoint

    resume = None
    if resumable:
        mine = {"rng": random_states(run.device), "carry": state_to_cpu(carry)}
        ranks = gather(mine, run.dist)
        resume = {
            "optimizer": run.optimizer.state_dict(),
            "progress": {k: v for k, v in asdict(progress).items() if k != "history"},
            "world": run.dist.world,
            "ranks": ranks,
        }
    if not run.dist.main:
        return
    weights = {k: v.detach().cpu().clone() for k, v in run.net.state_dict().items()}
    ckpt = Checkpoint(run.model_settings, run.tokenizer, weights, train=training_record(run, progress, val_loss, train_loss), resume=resume)
    try:
        save_checkpoint(path, ckpt, with_weights_file=not resumable)
    except (OSError, RuntimeError) as exc:  # checked at the start; a full disk since (torch says RuntimeError)
        reason = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[0][:120]
        raise TrainError(f"cannot write checkpoint {path}: {reason}") from None


def write_plot(path: Path, history: list[dict[str, Any]], unigram: float, label: str = "validation (whole pieces)") -> bool:
    """Train and validation loss against steps, as a PNG (written atomically). False if no data."""
    if not history:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [h["train_loss"] for h in history], label="train", marker=".")
    ax.plot(steps, [h["val_loss"] for h in history], label=label, marker=".")
    if math.isfinite(unigram):
        ax.axhline(unigram, color="grey", linestyle="--", label="unigram baseline")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("NLL per event (nats)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        write_atomic(path, lambda handle: fig.savefig(handle, format="png", dpi=100), clean=True)
    finally:
        plt.close(fig)
    return True
