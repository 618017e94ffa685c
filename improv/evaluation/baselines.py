"""Baselines for `improv eval`: an order-k Markov model with back-off, and a unigram model. Pure numpy.

Both score the same events as the network, factorised the same way: each event's fields in the
heads' order offset -> pitch -> duration -> velocity (``inference.HEAD_ORDER``), so the NLL of an
event is the sum of four per-field NLLs and the per-head breakdowns line up.

**Unigram.** Each field on its own: ``p(x) = (count(x) + alpha) / (N + alpha * V)`` (add-alpha, so
every class, seen or not, has a nonzero probability).

**Markov (the Continuator's idea, made a proper distribution).** Field ``f`` of event ``t`` is
predicted from a context ``h_j`` = the previous ``j`` whole events plus the fields of event ``t``
that come before ``f`` in head order, for ``j = k, k-1, ..., 0``. Where the Continuator jumps to the
longest context it has seen, we *interpolate* down the chain with Witten-Bell smoothing::

    p_j(x) = (c(h_j, x) + T(h_j) * p_{j-1}(x)) / (c(h_j) + T(h_j))      (p_j = p_{j-1} if c(h_j) = 0)
    p_{-1}(x) = the unigram above

``c`` counts training occurrences and ``T(h)`` is the number of distinct values seen after ``h``.
Why Witten-Bell: it needs no tuned discounts, it gives a context that was followed by many
different values more weight for its back-off (the music there is less predictable), and by
induction every ``p_j`` sums to 1 over the field's classes and is nonzero wherever the unigram is.

Why hashing: a context of k events of four fields does not fit in one integer, and a dict per
context is too slow and too big for millions of events. Contexts are hashed to 64 bits
(splitmix64 mixing; a collision needs ~2^32 distinct contexts to become likely) and counted with
``np.unique``; lookups are ``np.searchsorted``. Fitting is a few sorts of N keys per order and field.
Pieces are padded with k PAD events before their BOS, so every event has a full-length history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from improv.model.step_model import HEAD_ORDER
from improv.music.tokenizer import FIELDS

_U64 = np.uint64
_C1 = _U64(0x9E3779B97F4A7C15)
_C2 = _U64(0xBF58476D1CE4E5B9)
_C3 = _U64(0x94D049BB133111EB)


def _mix(h: np.ndarray, x: np.ndarray | int) -> np.ndarray:
    """splitmix64 of ``h + (x + 1) * golden``: a well-spread 64-bit hash of the pair (h, x)."""
    with np.errstate(over="ignore"):
        z = np.asarray(h, dtype=_U64) + (np.asarray(x, dtype=_U64) + _U64(1)) * _C1
        z = (z ^ (z >> _U64(30))) * _C2
        z = (z ^ (z >> _U64(27))) * _C3
        return z ^ (z >> _U64(31))


def event_codes(rows: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """One int64 per token row (mixed radix over the field sizes): equal rows, equal codes."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
    code = np.zeros(len(rows), dtype=np.int64)
    for field in range(4):
        code = code * int(sizes[field]) + rows[:, field]
    return code


def _partial_codes(rows: np.ndarray, sizes: Sequence[int], k: int) -> np.ndarray:
    """Code of the first ``k`` fields (in head order) of each row: what head k already knows."""
    code = np.zeros(len(rows), dtype=np.int64)
    for field in HEAD_ORDER[:k]:
        code = code * int(sizes[field]) + rows[:, field].astype(np.int64)
    return code


class UnigramModel:
    """Each field independently, add-alpha smoothed."""

    def __init__(self, sizes: Sequence[int], alpha: float = 0.5) -> None:
        self.sizes = tuple(int(n) for n in sizes)
        self.alpha = float(alpha)
        self.counts = [np.zeros(n, dtype=np.int64) for n in self.sizes]

    def fit(self, pieces: Sequence[np.ndarray]) -> "UnigramModel":
        for rows in pieces:
            targets = np.asarray(rows)[1:]
            for field in range(4):
                self.counts[field] += np.bincount(targets[:, field].astype(np.int64), minlength=self.sizes[field])
        return self

    def probs(self, field: int) -> np.ndarray:
        """The whole distribution of one field (FIELD index)."""
        c = self.counts[field]
        return (c + self.alpha) / (c.sum() + self.alpha * len(c))

    def nll(self, pieces: Sequence[np.ndarray]) -> tuple[np.ndarray, int]:
        """(summed NLL of each field in FIELD order, number of events) over every event after BOS."""
        total = np.zeros(4)
        n = 0
        logp = [np.log(self.probs(f)) for f in range(4)]
        for rows in pieces:
            targets = np.asarray(rows)[1:].astype(np.int64)
            n += len(targets)
            for field in range(4):
                total[field] -= logp[field][targets[:, field]].sum()
        return total, n


@dataclass
class _Table:
    """Counts for one (history length, head): contexts with c(h), T(h); pairs with c(h, x)."""

    ctx_keys: np.ndarray  # sorted uint64
    ctx_count: np.ndarray  # c(h)
    ctx_types: np.ndarray  # T(h)
    pair_keys: np.ndarray  # sorted uint64
    pair_count: np.ndarray  # c(h, x)


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """values[keys == query], 0 where the query key is absent."""
    if len(keys) == 0:
        return np.zeros(len(query), dtype=np.float64)
    idx = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return np.where(keys[idx] == query, values[idx], 0).astype(np.float64)


class MarkovModel:
    """Order-k Markov model over events with Witten-Bell interpolated back-off (see module doc)."""

    def __init__(self, order: int, sizes: Sequence[int], alpha: float = 0.5) -> None:
        if order < 0:
            raise ValueError("order must be >= 0")
        self.order = int(order)
        self.sizes = tuple(int(n) for n in sizes)
        self.unigram = UnigramModel(self.sizes, alpha)
        self.pad = int(np.prod(self.sizes, dtype=np.int64))  # a code no real row has
        self.tables: list[list[_Table]] = []  # [j][k]

    # ---- contexts ------------------------------------------------------------------------

    def _padded_codes(self, rows: np.ndarray) -> np.ndarray:
        return np.concatenate([np.full(self.order, self.pad, dtype=np.int64), event_codes(rows, self.sizes)])

    def _history_hashes(self, pieces: Sequence[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
        """For every target event (all pieces, rows[1:]): hashes of its last 0..k events, and the targets."""
        codes, targets = [], []
        for rows in pieces:
            rows = np.asarray(rows)
            if len(rows) < 2:
                continue
            padded = self._padded_codes(rows)
            # Target t (1..n-1) has its previous events at padded positions order+t-1, order+t-2, ...
            idx = np.arange(1, len(rows)) + self.order
            codes.append(np.stack([padded[idx - 1 - i] for i in range(self.order)], axis=1) if self.order else np.zeros((len(idx), 0), np.int64))
            targets.append(rows[1:].astype(np.int64))
        if not targets:
            return [np.zeros(0, _U64)] * (self.order + 1), np.zeros((0, 4), np.int64)
        history = np.concatenate(codes)
        target_rows = np.concatenate(targets)
        hashes = [np.full(len(target_rows), _U64(0x1234567))]
        for j in range(self.order):  # add one older event at a time
            hashes.append(_mix(hashes[-1], history[:, j]))
        return hashes, target_rows

    def _context_keys(self, history_hash: np.ndarray, targets: np.ndarray, j: int, k: int) -> np.ndarray:
        salt = _mix(history_hash, _partial_codes(targets, self.sizes, k))
        return _mix(salt, j * 8 + k)

    # ---- fitting and scoring -------------------------------------------------------------

    def fit(self, pieces: Sequence[np.ndarray]) -> "MarkovModel":
        self.unigram.fit(pieces)
        hashes, targets = self._history_hashes(pieces)
        self.tables = []
        for j in range(self.order + 1):
            row: list[_Table] = []
            for k, field in enumerate(HEAD_ORDER):
                ctx = self._context_keys(hashes[j], targets, j, k)
                pair = _mix(ctx, targets[:, field])
                pair_keys, first, pair_count = np.unique(pair, return_index=True, return_counts=True)
                ctx_keys, ctx_count = np.unique(ctx, return_counts=True)
                # T(h): distinct pairs per context (each unique pair names its context once).
                types_keys, types = np.unique(ctx[first], return_counts=True)
                assert np.array_equal(types_keys, ctx_keys)
                row.append(_Table(ctx_keys, ctx_count.astype(np.int32), types.astype(np.int32), pair_keys, pair_count.astype(np.int32)))
            self.tables.append(row)
        return self

    def _probability(self, k: int, ctx_keys: list[np.ndarray], x: np.ndarray) -> np.ndarray:
        """p(x) for head ``k`` given each context chain ``ctx_keys[j]`` (j = 0..order)."""
        field = HEAD_ORDER[k]
        p = self.unigram.probs(field)[x]
        for j in range(self.order + 1):
            table = self.tables[j][k]
            c_h = _lookup(table.ctx_keys, table.ctx_count, ctx_keys[j])
            t_h = _lookup(table.ctx_keys, table.ctx_types, ctx_keys[j])
            c_hx = _lookup(table.pair_keys, table.pair_count, _mix(ctx_keys[j], x))
            p = np.where(c_h > 0, (c_hx + t_h * p) / np.maximum(c_h + t_h, 1), p)
        return p

    def nll(self, pieces: Sequence[np.ndarray]) -> tuple[np.ndarray, int]:
        """(summed NLL of each field in FIELD order, number of events) over every event after BOS."""
        if not self.tables:
            raise RuntimeError("fit the model first")
        hashes, targets = self._history_hashes(pieces)
        total = np.zeros(4)
        for k, field in enumerate(HEAD_ORDER):
            keys = [self._context_keys(hashes[j], targets, j, k) for j in range(self.order + 1)]
            total[field] = -np.log(self._probability(k, keys, targets[:, field])).sum()
        return total, len(targets)

    def field_probs(self, history: np.ndarray, event: Sequence[int], field: int) -> np.ndarray:
        """The whole distribution of ``field`` for the event after ``history`` (rows, BOS first),
        given ``event``'s fields that come before ``field`` in head order (later ones are ignored)."""
        rows = np.concatenate([np.asarray(history).reshape(-1, 4), np.asarray(event).reshape(1, 4)])
        hashes, targets = self._history_hashes([rows])
        last = [h[-1:] for h in hashes]
        k = HEAD_ORDER.index(field)
        x = np.arange(self.sizes[field])
        target = np.repeat(targets[-1:], len(x), axis=0)
        keys = [np.repeat(self._context_keys(last[j], target[:1], j, k), len(x)) for j in range(self.order + 1)]
        return self._probability(k, keys, x)


def per_field_dict(total: np.ndarray, n: int, prefix: str) -> dict[str, float]:
    """``{prefix: mean event NLL, prefix_pitch: ..., ...}`` from FIELD-order sums."""
    n = max(n, 1)
    out = {prefix: float(total.sum() / n)}
    for field, name in enumerate(FIELDS):
        out[f"{prefix}_{name}"] = float(total[field] / n)
    return out
