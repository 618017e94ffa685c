"""The one held-out negative log-likelihood: training's validation loss and `improv eval`'s
``heldout_nll`` are this function, so the two numbers are the same number.

Each piece is scored from a zero state at BOS through EOS: every event after BOS, EOS included, is
a target, and an event's NLL is the sum of its four heads' (the training loss). Pieces are batched
by similar length (padding masked out) so that a held-out set of thousands of pieces is a few
forward passes. torch is imported here only: this is the training and evaluation path.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def piece_batches(pieces: Sequence[np.ndarray], max_events: int = 16384) -> list[tuple[np.ndarray, np.ndarray]]:
    """Whole pieces (BOS .. EOS token rows), shortest first, in batches of at most about
    ``max_events`` padded events: [(rows (B, T + 1, 4) int64, mask (B, T) bool)]."""
    order = sorted((i for i in range(len(pieces)) if len(pieces[i]) >= 2), key=lambda i: len(pieces[i]))
    batches: list[tuple[np.ndarray, np.ndarray]] = []
    group: list[np.ndarray] = []
    for i in order:
        piece = np.asarray(pieces[i])
        if group and (len(group) + 1) * (len(piece) - 1) > max_events:
            batches.append(_pad(group))
            group = []
        group.append(piece)
    if group:
        batches.append(_pad(group))
    return batches


def _pad(group: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    steps = max(len(p) for p in group) - 1
    rows = np.zeros((len(group), steps + 1, 4), dtype=np.int64)
    mask = np.zeros((len(group), steps), dtype=bool)
    for b, piece in enumerate(group):
        rows[b, : len(piece)] = piece
        mask[b, : len(piece) - 1] = True
    return rows, mask


def heldout_nll(net: Any, pieces: Sequence[np.ndarray], device: Any = "cpu", *, rank: int = 0, world: int = 1, max_events: int = 16384) -> tuple[np.ndarray, int]:
    """(summed NLL of each field in FIELD order, number of target events) of ``pieces`` under
    ``net`` (an ``ImprovNet``, switched to eval mode here). In a distributed run each rank scores
    every ``world``-th batch from ``rank``: the caller sums the results over ranks."""
    import torch

    from improv.model.network import event_losses

    net.eval()
    total = torch.zeros(4, dtype=torch.float64)
    count = 0
    with torch.no_grad():
        for rows, mask in piece_batches(pieces, max_events)[rank::world]:
            x = torch.from_numpy(rows).to(device)
            m = torch.from_numpy(mask).to(device)
            logits, _ = net(x[:, :-1], x[:, 1:])
            losses = event_losses(logits, x[:, 1:], reduction="none")  # (4, B, T)
            total += (losses * m).sum(dim=(1, 2)).double().cpu()
            count += int(mask.sum())
    return total.numpy(), count
