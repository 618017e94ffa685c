"""`improv train`: the training loop, resumable and distributed. Functions only, nothing at import.

One optimiser step trains on ``batch_size`` rows of ``chunk_len`` events with a loss on every
position (truncated BPTT; ``improv.data`` says how chunks are made and why). Validation is the
NLL per event of whole held-out pieces from a zero state, BOS to EOS, the way `improv eval`
measures it. AdamW, linear warm-up then cosine decay, gradient clipping, early stopping.

Files: ``--out`` (the best model, no optimiser state: small, what you ship) and ``NAME.last.pt``
beside it (the latest weights plus everything ``--resume`` needs: optimiser, step, position in the
epoch, recurrent state carried between chunks, every random state). Both are written atomically.
Ctrl-C or SIGTERM asks the loop to stop after the current step; it then writes ``last`` and exits.

Distributed: under ``torchrun`` (``WORLD_SIZE`` set) each process trains its own rows of every
batch with DistributedDataParallel (gloo on CPU, nccl on CUDA); rank 0 alone writes and prints.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any


from improv.settings.sections import Settings, TrainSettings
from improv.training.distributed import Dist

# torch is imported inside the functions that use it: `improv --help` stays fast.
if TYPE_CHECKING:  # for the signatures only
    import torch

    from improv.corpus.load import Piece
    from improv.training.batches import Augmenter
    from improv.model.network import ImprovNet
    from improv.music.tokenizer import Tokenizer




@dataclass
class Progress:
    """Counters of the run, all restored by --resume."""

    step: int = 0
    epoch: int = 0
    batch: int = 0  # next batch of `epoch`
    best_val_loss: float = math.inf
    bad_validations: int = 0
    seconds: float = 0.0
    total_steps: int = 0
    loss_sum: float = 0.0  # since the last validation, weighted by targets
    loss_count: int = 0
    targets_seen: int = 0
    step_seconds: float = 0.0  # time inside optimiser steps (the events/s figure)
    steps_since_val: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Run:
    """Everything one training run holds (built by ``prepare``)."""

    settings: Settings
    ts: TrainSettings
    dist: Dist
    device: torch.device
    tokenizer: Tokenizer
    train: list[Piece]
    val: list[Piece]  # empty: no validation (one source piece, or val_fraction 0)
    net: ImprovNet
    model: torch.nn.Module  # net, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    augmenter: Augmenter
    unigram: float  # the unigram baseline's NLL on the validation pieces (NaN without any)
    out: Path
    started: float = field(default_factory=time.perf_counter)
    seconds_before: float = 0.0

    def events_per_s(self, progress: Progress) -> float:
        return round(progress.targets_seen / max(progress.step_seconds, 1e-9), 1)

    def elapsed(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started
