"""Training data: the split by piece, augmentation, and the chunks of truncated BPTT. Pure numpy.

How chunks are made (``plan_epoch``; measured against the alternatives, see README "Training on
your own MIDI"): every epoch the training pieces are shuffled, augmented (one random transposition
and tempo stretch per piece) and dealt out to ``batch_size x world`` rows, longest first to the
shortest row so that rows end together. A batch is the next ``chunk_len`` events of every row, and
every position is a target. In "stream" mode (the default) a row runs through its pieces back to
back and the recurrent state is carried (detached) from chunk to chunk and from one piece into the
next, so no step is spent on padding; in "pieces" mode each piece is padded to whole chunks and
starts from a zero state, exactly as evaluation runs it. EOS is only ever a target, never an input.

An epoch's plan depends only on (seed, epoch), so a resumed run rebuilds it and skips to the batch
it stopped at; in a distributed run every rank builds the same plan and takes its own rows.
"""

from __future__ import annotations

import hashlib
import heapq
from pathlib import PurePath
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from improv.corpus.sources import MUSIC21_PREFIX
from improv.music.tokenizer import DURATION, OFFSET, TOKEN_DTYPE, Tokenizer


class PieceLike(Protocol):
    name: str
    tokens: np.ndarray


@dataclass(frozen=True)
class Batch:
    inputs: np.ndarray  # (B, T, 4) uint8: events fed in
    targets: np.ndarray  # (B, T, 4) uint8: the event after each input
    mask: np.ndarray  # (B, T) bool: which targets count (False on padding)
    reset: np.ndarray  # (B,) bool: rows that start a new piece here (zero state)

    @property
    def targets_count(self) -> int:
        return int(self.mask.sum())


# ---- split ------------------------------------------------------------------------------------


def split_pieces(pieces: Sequence[PieceLike], val_fraction: float, seed: int) -> tuple[list[PieceLike], list[PieceLike]]:
    """Seeded split by piece, within each source: (train, validation), each in the input order.

    Each source (``piece.source``: a folder, a file, a ``music21:NAME``) is split on its own, so
    every collection is represented in validation, and a piece is held out exactly when it would
    be held out from its own source alone: a model trained on several collections never trains on
    a piece that a model of one of them holds out (a voice fine-tuned from the base model is
    evaluated on pieces the base never saw). In each source, at least one piece is held out
    whenever ``val_fraction > 0`` and it has two pieces or more, and one is always kept.
    """
    groups: dict[str, list[int]] = {}
    for i, piece in enumerate(pieces):
        groups.setdefault(getattr(piece, "source", ""), []).append(i)
    held: set[int] = set()
    for members in groups.values():
        n = len(members)
        n_val = int(round(n * val_fraction)) if val_fraction > 0 else 0
        if val_fraction > 0 and n >= 2:
            n_val = min(max(n_val, 1), n - 1)
        # Seeded by piece *names*, not positions: the same pieces are held out whatever else is added.
        order = sorted(members, key=lambda i: _name_key(split_name(pieces[i]), seed))
        held.update(order[:n_val])
    train = [p for i, p in enumerate(pieces) if i not in held]
    val = [p for i, p in enumerate(pieces) if i in held]
    return train, val


def split_name(piece: PieceLike) -> str:
    """The name a piece is split by: its path inside its folder, not the folder's path as typed.

    Why: a piece's name starts with the source as the user typed it (``../shared/ff/8.mid``), so
    keying the split on it held out other pieces for every spelling of the same folder (on 92
    piano pieces, a held-out unigram NLL of 8.5 to 10.5 nats: a README figure no one else could
    reproduce). music21 names (``music21:bach/...``) are the same everywhere and stay whole, so
    the shipped voices keep their splits.
    """
    name, source = piece.name, getattr(piece, "source", "") or ""
    if not source or source.startswith(MUSIC21_PREFIX):
        return name
    prefix = PurePath(source).as_posix().rstrip("/") + "/"
    if name.startswith(prefix):
        return name[len(prefix):]
    return PurePath(name).name  # a source that is one file: its file name (and any "#N" work)


def _name_key(name: str, seed: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{name}".encode(), digest_size=8).digest(), "big")


# ---- augmentation -----------------------------------------------------------------------------


def transposition_shifts(transpose: int, by: str = "semitones") -> np.ndarray:
    """The pitch shifts (semitones) augmentation draws from, uniformly: ``-transpose..+transpose``
    steps of a semitone, or of a fifth on the circle of fifths (``by="fifths"``).

    Why fifths: a semitone moves a piece's key signature by five or seven accidentals (G major up
    one is Ab major), so semitone shifts teach the model remote keys its corpus rarely uses and its
    unprompted music drifts there; a step of a fifth changes the key signature by one accidental.
    Each fifth step is realised as the smallest shift to that key (+1 fifth = -5 semitones, a fourth
    down; +2 = +2), so the register moves by at most a tritone.
    """
    if by == "semitones":
        return np.arange(-transpose, transpose + 1)
    if by == "fifths":
        shifts = [(7 * k + 5) % 12 - 5 for k in range(-transpose, transpose + 1)]  # into -5..6
        return np.array(sorted(set(shifts)))
    raise ValueError(f"transpose_by must be semitones or fifths, not {by!r}")


class Augmenter:
    """Random transposition and tempo stretch of whole pieces, with precomputed class tables.

    A stretch by ``s`` re-quantises every offset and duration: class ``c`` becomes the grid class
    nearest ``s * time_values[c]`` (a note keeps a nonzero duration, a chord keeps offset 0). The
    factors are ``n_stretch`` evenly spaced values in ``1 +- tempo_stretch``, one lookup table each,
    so stretching a piece is two table lookups.
    """

    def __init__(
        self, tokenizer: Tokenizer, transpose: int, tempo_stretch: float, n_stretch: int = 9, transpose_by: str = "semitones"
    ) -> None:
        self.tokenizer = tokenizer
        self.shifts = transposition_shifts(int(transpose), transpose_by)
        self.factors = np.linspace(1 - tempo_stretch, 1 + tempo_stretch, n_stretch) if tempo_stretch > 0 else np.ones(1)
        mids = (tokenizer.time_steps[1:] + tokenizer.time_steps[:-1]) / 2
        steps = tokenizer.time_steps.astype(np.float64)
        # searchsorted(side="left") on the midpoints is the tokenizer's own rounding (ties to shorter).
        self.offset_tables = [np.searchsorted(mids, steps * f, side="left").astype(TOKEN_DTYPE) for f in self.factors]
        self.duration_tables = [np.maximum(t, 1).astype(TOKEN_DTYPE) for t in self.offset_tables]
        for off, dur in zip(self.offset_tables, self.duration_tables):
            off[0] = 0  # same onset stays the same onset
            dur[0] = 0  # class 0 only ever marks a special token

    @property
    def identity(self) -> bool:
        return len(self.shifts) == 1 and len(self.factors) == 1

    def __call__(self, tokens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        shift = int(self.shifts[rng.integers(len(self.shifts))]) if len(self.shifts) > 1 else 0
        k = int(rng.integers(len(self.factors))) if len(self.factors) > 1 else 0
        return self.apply(tokens, shift, k)

    def apply(self, tokens: np.ndarray, semitones: int, stretch_index: int) -> np.ndarray:
        out = self.tokenizer.transpose(tokens, semitones) if semitones else np.array(tokens, copy=True)
        if self.factors[stretch_index] != 1.0:
            out[:, OFFSET] = self.offset_tables[stretch_index][out[:, OFFSET]]
            out[:, DURATION] = self.duration_tables[stretch_index][out[:, DURATION]]
        return out


# ---- the epoch plan ---------------------------------------------------------------------------


@dataclass
class EpochPlan:
    """One epoch of chunks for one rank: ``len(plan)`` batches, ``plan.batch(i)``."""

    inputs: np.ndarray  # (rows, L, 4)
    targets: np.ndarray  # (rows, L, 4)
    mask: np.ndarray  # (rows, L)
    starts: np.ndarray  # (rows, L // T) bool: a piece starts at this chunk
    chunk_len: int

    def __len__(self) -> int:
        return self.starts.shape[1]

    def batch(self, index: int) -> Batch:
        t = self.chunk_len
        sl = slice(index * t, (index + 1) * t)
        return Batch(self.inputs[:, sl], self.targets[:, sl], self.mask[:, sl], self.starts[:, index])

    @property
    def targets_count(self) -> int:
        return int(self.mask.sum())


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(epoch), 0x1A7])


def plan_epoch(
    pieces: Sequence[PieceLike],
    augmenter: Augmenter | None,
    batch_size: int,
    chunk_len: int,
    seed: int,
    epoch: int,
    crop: float = 0.0,
    rank: int = 0,
    world: int = 1,
    mode: str = "stream",
) -> EpochPlan:
    """Shuffle, augment and deal the pieces to ``batch_size * world`` rows; return this rank's rows.

    ``mode`` "stream": a row is its pieces back to back, the state flows from one into the next;
    "pieces": each piece padded to whole chunks and started from a zero state.
    """
    if mode not in ("stream", "pieces"):
        raise ValueError(f"unknown chunking mode {mode!r}")
    rng = epoch_rng(seed, epoch)
    rows_total = batch_size * world
    parts: list[np.ndarray] = []  # token runs, each trained from a zero state
    for i in rng.permutation(len(pieces)):
        tokens = pieces[i].tokens
        if augmenter is not None and not augmenter.identity:
            tokens = augmenter(tokens, rng)
        if mode == "pieces" and crop > 0 and len(tokens) > 3 and rng.random() < crop:
            # Cut in two: the head from BOS, the tail from a zero state at a random event. Every
            # target is still trained once, and the tail teaches the engine's mid-phrase priming.
            cut = int(rng.integers(1, len(tokens) - 2))
            parts.append(tokens[: cut + 1])
            tokens = tokens[cut:]
        parts.append(tokens)
    parts = _cap_length([p for p in parts if len(p) >= 2], rows_total, chunk_len)
    segments = [_padded_pairs(p, chunk_len if mode == "pieces" else 1) for p in parts]
    rows = _deal(segments, rows_total, rng)
    n_chunks = -(-max(sum(len(segments[s][0]) for s in row) for row in rows) // chunk_len)
    mine = rows[rank::world]
    shape = (len(mine), n_chunks * chunk_len)
    inputs = np.zeros(shape + (4,), dtype=TOKEN_DTYPE)
    targets = np.zeros(shape + (4,), dtype=TOKEN_DTYPE)
    mask = np.zeros(shape, dtype=bool)
    starts = np.zeros((len(mine), n_chunks), dtype=bool)
    for r, row in enumerate(mine):
        at = 0
        for s in row:
            x, y, m = segments[s]
            inputs[r, at : at + len(x)], targets[r, at : at + len(x)], mask[r, at : at + len(x)] = x, y, m
            if mode == "pieces" or at == 0:
                starts[r, at // chunk_len] = True
            at += len(x)
    if mode == "stream" and crop > 0 and n_chunks > 1:
        # Random restarts: a row's state is zeroed at a chunk boundary, mid-piece, as the engine primes it.
        restarts = rng.random((rows_total, n_chunks - 1)) < crop
        starts[:, 1:] |= restarts[rank::world]
    return EpochPlan(inputs, targets, mask, starts, chunk_len)


def _cap_length(parts: list[np.ndarray], rows: int, chunk_len: int) -> list[np.ndarray]:
    """Cut runs longer than an average row into row-sized runs (consecutive, sharing one event so
    no target is lost): one very long piece would otherwise pad every other row to its length."""
    total = sum(len(p) - 1 for p in parts)
    cap = max(chunk_len, -(-total // rows // chunk_len) * chunk_len)
    out: list[np.ndarray] = []
    for p in parts:
        while len(p) - 1 > cap:
            out.append(p[: cap + 1])
            p = p[cap:]
        out.append(p)
    return out


def _deal(segments: list[tuple[np.ndarray, ...]], rows_total: int, rng: np.random.Generator) -> list[list[int]]:
    """Longest first to the shortest row (rows end within a piece of each other), then each row's
    order shuffled."""
    rows: list[list[int]] = [[] for _ in range(rows_total)]
    heap = [(0, r) for r in range(rows_total)]
    for s in sorted(range(len(segments)), key=lambda s: -len(segments[s][0])):  # stable: ties keep the shuffled order
        length, r = heapq.heappop(heap)
        rows[r].append(s)
        heapq.heappush(heap, (length + len(segments[s][0]), r))
    for row in rows:
        rng.shuffle(row)
    return rows


def _padded_pairs(tokens: np.ndarray, chunk_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs, targets, mask) of one piece, padded to a whole number of chunks (1: no padding).

    The last event (EOS) is a target, never an input: in a stream the next piece's BOS follows
    the input before it, exactly as evaluation never feeds EOS."""
    n = len(tokens) - 1
    padded = -(-n // chunk_len) * chunk_len
    x = np.zeros((padded, 4), dtype=TOKEN_DTYPE)
    y = np.zeros((padded, 4), dtype=TOKEN_DTYPE)
    m = np.zeros(padded, dtype=bool)
    x[:n], y[:n], m[:n] = tokens[:-1], tokens[1:], True
    return x, y, m
