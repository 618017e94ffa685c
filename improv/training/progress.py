"""What one training run holds (``Run``) and how far it has come (``Progress``, restored by
``--resume``). Plain records, built by ``training.run.prepare`` and advanced by ``training.loop``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from improv.settings.sections import ModelSettings, TrainSettings
from improv.training.distributed import Dist

if TYPE_CHECKING:  # torch is imported by the functions that use it: `improv --help` stays fast
    import torch

    from improv.corpus.load import Piece
    from improv.model.network import ImprovNet
    from improv.music.tokenizer import Tokenizer
    from improv.training.batches import Augmenter
    from improv.training.pairs import CallAnswer


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

    model_settings: ModelSettings
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
    texture: dict[str, Any] = field(default_factory=dict)  # of the training pieces (music.texture)
    origin: dict[str, Any] | None = None  # the model it was fine-tuned from (--from), if any
    # --pairs (training.pairs): the training pairs, and the held-out ones validation scores (None: whole pieces)
    train_pairs: list[CallAnswer] | None = None
    val_pairs: list[CallAnswer] | None = None
    started: float = field(default_factory=time.perf_counter)
    seconds_before: float = 0.0

    def events_per_s(self, progress: Progress) -> float:
        return round(progress.targets_seen / max(progress.step_seconds, 1e-9), 1)

    def elapsed(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started
