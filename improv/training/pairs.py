"""Call -> answer training (`improv train --pairs`): phrase pairs, their batches and their loss.

Why: at serve time the engine primes the network on BOS and the performer's call, then samples the
answer. A voice trained on whole pieces has seen calls mid-piece, never as the whole of what it
heard; trained on pairs it learns to answer from exactly the state it will answer from.

Pairs are cut from each training piece as `improv eval --duet` cuts them (``evaluation.phrases``:
the call, ``bars`` bars from a bar line, and the piece's next ``bars`` bars); one pair's sequence is
BOS, the call's rows (the first at offset 0), then the answer's rows (the first offset from the
call's last event), run from a zero state. Only the answer's events are targets: the call is
context, the way the engine hears it, not music to learn to play (the performer plays it). No EOS:
an engine's answer ends at its length, never on the model's say.

Validation scores the held-out pieces' pairs the same way (the answer's NLL per event after BOS
and the call: `eval --duet`'s ``answer_nll_primed``, summed over the four heads).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from improv.evaluation.phrases import cut_pairs
from improv.music.tokenizer import BOS, TOKEN_DTYPE, Tokenizer
from improv.training.batches import Augmenter, Batch, epoch_rng

BUCKET = 16  # batches sorted by length together: little padding, still a shuffled order
MAX_VAL_PAIRS = 2000  # validation pairs, evenly spread: a validation stays seconds long


@dataclass(frozen=True)
class CallAnswer:
    """One pair as the network is trained on it."""

    piece: str
    rows: np.ndarray  # (n, 4) uint8: BOS, the call, the answer
    answer_at: int  # index in ``rows`` of the answer's first event

    def targets_mask(self) -> np.ndarray:
        """Which targets (``rows[1:]``) count: the answer's events only."""
        return np.arange(1, len(self.rows)) >= self.answer_at


def pair_sequences(pieces: Sequence[Any], tokenizer: Tokenizer, bars: Sequence[int]) -> list[CallAnswer]:
    """Every (call, answer) pair of ``pieces`` (``corpus.Piece``), for each length in ``bars``."""
    bos = tokenizer.special(BOS)[None]
    out: list[CallAnswer] = []
    for piece in pieces:
        for n in bars:
            for pair in cut_pairs(piece.name, piece.tokens, tokenizer, piece.meter, n, piece.bpm):
                rows = np.concatenate([bos, pair.call_rows, pair.answer_rows]).astype(TOKEN_DTYPE)
                out.append(CallAnswer(piece.name, rows, 1 + len(pair.call_rows)))
    return out


def spread_pairs(pairs: Sequence[CallAnswer], count: int) -> list[CallAnswer]:
    """At most ``count`` pairs, evenly spread (validation: the same ones every time)."""
    if len(pairs) <= count:
        return list(pairs)
    return [pairs[int(i)] for i in np.linspace(0, len(pairs) - 1, count).round()]


def padded(group: Sequence[CallAnswer], rows: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs (B, T, 4), targets (B, T, 4), mask (B, T)) of pairs padded to the longest;
    ``rows``: the pairs' rows as augmented (default: as cut)."""
    rows = rows if rows is not None else [p.rows for p in group]
    steps = max(len(r) for r in rows) - 1
    x = np.zeros((len(group), steps, 4), dtype=TOKEN_DTYPE)
    y = np.zeros((len(group), steps, 4), dtype=TOKEN_DTYPE)
    m = np.zeros((len(group), steps), dtype=bool)
    for b, (pair, r) in enumerate(zip(group, rows)):
        n = len(r) - 1
        x[b, :n], y[b, :n], m[b, :n] = r[:-1], r[1:], pair.targets_mask()
    return x, y, m


@dataclass
class PairPlan:
    """One epoch of pair batches for one rank, with ``EpochPlan``'s interface (``len``, ``batch``)."""

    batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]]

    def __len__(self) -> int:
        return len(self.batches)

    def batch(self, index: int) -> Batch:
        x, y, m = self.batches[index]
        return Batch(x, y, m, np.ones(len(x), dtype=bool))  # every row from a zero state

    @property
    def targets_count(self) -> int:
        return int(sum(m.sum() for _, _, m in self.batches))


def plan_pairs(pairs: Sequence[CallAnswer], augmenter: Augmenter | None, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> PairPlan:
    """Shuffle and augment the pairs (one transposition per pair, call and answer alike), cut them
    into batches of ``batch_size * world`` (lengths sorted within buckets of ``BUCKET`` batches:
    little padding), shuffle the batches, and keep this rank's rows. Depends only on (seed, epoch):
    a resumed run rebuilds it."""
    rng = epoch_rng(seed, epoch)
    order = rng.permutation(len(pairs))
    rows = [pairs[i].rows for i in order]
    if augmenter is not None and not augmenter.identity:
        rows = [augmenter(r, rng) for r in rows]
    size = batch_size * world
    groups: list[list[int]] = []
    for start in range(0, len(order), size * BUCKET):
        bucket = sorted(range(start, min(start + size * BUCKET, len(order))), key=lambda k: len(rows[k]))
        groups += [bucket[i : i + size] for i in range(0, len(bucket), size)]
    batches = []
    for g in rng.permutation(len(groups)):
        mine = groups[g][rank::world]
        if mine:
            batches.append(padded([pairs[order[k]] for k in mine], [rows[k] for k in mine]))
    return PairPlan(batches)


def pairs_nll(net: Any, pairs: Sequence[CallAnswer], device: Any = "cpu", *, rank: int = 0, world: int = 1, batch_size: int = 64) -> tuple[np.ndarray, int]:
    """(summed NLL of each field, answer events) of the pairs' answers after BOS and the call."""
    import torch

    from improv.model.network import event_losses

    net.eval()
    total = torch.zeros(4, dtype=torch.float64)
    count = 0
    ordered = sorted(pairs, key=lambda p: len(p.rows))
    groups = [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]
    with torch.no_grad():
        for group in groups[rank::world]:
            x, y, m = (torch.from_numpy(a).to(device) for a in padded(group))
            logits, _ = net(x.long(), y.long())
            losses = event_losses(logits, y.long(), reduction="none")  # (4, B, T)
            total += (losses * m).sum(dim=(1, 2)).double().cpu()
            count += int(m.sum())
    return total.numpy(), count
