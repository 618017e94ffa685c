"""One optimiser step of truncated BPTT, and the learning-rate schedule.

AdamW (no weight decay on biases and embeddings: decay there only shrinks rare classes), a
linear warm-up then cosine decay to ``lr * min_lr_ratio``, gradient clipping; the loss is the NLL
of every target event, the four heads summed, averaged over the chunk's real (unpadded) targets.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from improv.settings.sections import TrainSettings
from improv.training.state import detach, reset_rows

# torch is imported inside the functions that use it: `improv --help` stays fast.
if TYPE_CHECKING:  # for the signatures only
    import torch

    from improv.model.network import State
    from improv.training.batches import Batch


def lr_at(step: int, ts: TrainSettings, total_steps: int) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to ``lr * min_lr_ratio``."""
    if ts.warmup_steps and step < ts.warmup_steps:
        return ts.lr * (step + 1) / ts.warmup_steps
    span = max(total_steps - ts.warmup_steps, 1)
    t = min(max(step - ts.warmup_steps, 0) / span, 1.0)
    return ts.lr * (ts.min_lr_ratio + (1 - ts.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def make_optimizer(model: torch.nn.Module, ts: TrainSettings) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and embeddings (decay there only shrinks rare classes)."""
    import torch

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and "embed" not in name and "cond." not in name else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": ts.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=ts.lr, betas=(0.9, 0.99))


def to_tensors(batch: Batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    import torch

    x = torch.from_numpy(np.ascontiguousarray(batch.inputs)).to(device).long()
    y = torch.from_numpy(np.ascontiguousarray(batch.targets)).to(device).long()
    m = torch.from_numpy(np.ascontiguousarray(batch.mask)).to(device)
    return x, y, m


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: Batch, state: State | None, ts: TrainSettings, device: torch.device) -> tuple[float, int, State]:
    """One optimiser step on one batch of chunks: (mean loss, targets, carried state)."""
    import torch

    from improv.model.network import event_losses

    model.train()
    x, y, m = to_tensors(batch, device)
    logits, new_state = model(x, y, reset_rows(state, batch.reset, device))
    nll = event_losses(logits, y, reduction="none").sum(0)
    count = int(batch.mask.sum())
    loss = (nll * m).sum() / max(count, 1)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), ts.grad_clip)
    optimizer.step()
    return float(loss.detach()), count, detach(new_state)
