"""The numbers `improv eval` reports on generated music, as pure functions (the shell is ``run``).

* ``collapse_rate`` — share of generated events inside a run of >= 8 identical consecutive events
  (identical rows: pitch, offset, duration and velocity): the seeds' argmax failure.
* ``CopyIndex.longest`` — the longest run of consecutive events found verbatim (all four fields)
  inside one training piece: ``longest_copy`` for samples, ``corpus_longest_copy`` for held-out
  real excerpts (how much real music shares with the training set, the yardstick).
* ``feature_overlaps`` — Yang & Lerch's MGEval (2018) relative measure: per-piece features
  (pitch-class histogram weighted by duration, note-length histogram over MGEval's 12 classes,
  mean inter-onset interval between distinct onsets); intra-set distances of the real excerpts and
  inter-set distances of the samples to them; a Gaussian KDE of each; the area under the smaller.
  1 = generated music sits among the real pieces as they sit among themselves.

The KDE uses Scott's bandwidth (as scipy's ``gaussian_kde``, which MGEval calls), integrated over
the whole line (identical sets give exactly 1), on a grid with FFT convolution. The copy search
hashes windows with two 31-bit prime moduli (a 62-bit key, no ``2**64`` wrap) and binary-searches
the run length per sample: O(N log m) for N training events, so a million-event corpus takes
seconds.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from improv.evaluation.baselines import event_codes
from improv.music.notes import Note
from improv.music.tokenizer import BOS, PITCH, Tokenizer

COLLAPSE_RUN = 8  # events in a run of identical events that counts as collapse


def collapse_rate(samples: Sequence[np.ndarray], min_run: int = COLLAPSE_RUN) -> float:
    """Share of all events (pooled over samples) inside a run of >= ``min_run`` identical rows."""
    in_runs = total = 0
    for rows in samples:
        rows = np.asarray(rows).reshape(-1, 4)
        total += len(rows)
        if len(rows) == 0:
            continue
        change = np.ones(len(rows), dtype=bool)
        change[1:] = np.any(rows[1:] != rows[:-1], axis=1)
        starts = np.flatnonzero(change)
        lengths = np.diff(np.append(starts, len(rows)))
        in_runs += int(lengths[lengths >= min_run].sum())
    return in_runs / total if total else 0.0


_PRIMES = (2147483647, 2147483629)  # two primes below 2**31: products of residues fit in 63 bits


_BASES = (1_000_003, 917_521)


def _powers(base: int, p: int, n: int) -> np.ndarray:
    """base**i mod p for i < n, by doubling (vectorised: log2(n) multiplications)."""
    out = np.ones(1, dtype=np.int64)
    while len(out) < n:
        step = pow(base, len(out), p)
        out = np.concatenate([out, out * step % p])
    return out[: max(n, 1)]


class _Text:
    """Sequences concatenated, with prefix hashes under both moduli and each position's piece end."""

    def __init__(self, sequences: Sequence[np.ndarray]) -> None:
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        self.values = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences]) if len(sequences) else np.zeros(0, np.int64)
        self.starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(lengths) else np.zeros(0, np.int64)
        self.lengths = lengths
        self.end = np.repeat(self.starts + lengths, lengths)  # exclusive end of each position's piece
        n = len(self.values)
        self.prefix, self.inverse = [], []
        for p, b in zip(_PRIMES, _BASES):
            terms = (self.values % p) * _powers(b, p, n) % p
            self.prefix.append(np.concatenate([[0], np.cumsum(terms) % p]))  # cumsum < n * 2**31: no overflow
            self.inverse.append(_powers(pow(b, p - 2, p), p, n))

    def windows(self, length: int, candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(keys of the windows of ``length`` inside one sequence, their starts), at every start
        or only at ``candidates``."""
        n = len(self.values)
        if length < 1 or length > n:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        start = np.arange(n - length + 1) if candidates is None else candidates
        start = start[start + length <= self.end[start]]
        key = np.zeros(len(start), dtype=np.int64)
        for p, prefix, inverse in zip(_PRIMES, self.prefix, self.inverse):
            h = (prefix[start + length] - prefix[start]) % p * inverse[start] % p  # shift to position 0
            key = (key << 31) | h
        return key, start


class CopyIndex:
    """Longest runs of a query found verbatim inside one training sequence (rolling hashes).

    ``longest`` probes run lengths L: is some window of L query events also a window of the
    text? A text start that matches at L also matches at every shorter length, so each probe only
    hashes the text starts that matched the longest shorter probe: probing 1, 2, 4, ... first (then
    bisecting each query's bracket) makes every probe after the first few touch a small fraction of
    the text.
    """

    def __init__(self, sequences: Sequence[np.ndarray]) -> None:
        self.text = _Text(list(sequences))

    def _probe(self, queries: _Text, length: int, candidates: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(per query: does one of its windows of ``length`` occur in the text?, text starts that match)."""
        found = np.zeros(len(queries.lengths), dtype=bool)
        q_keys, q_starts = queries.windows(length)
        if len(q_keys) == 0:
            return found, np.zeros(0, np.int64)
        t_keys, t_starts = self.text.windows(length, candidates)
        sorted_q = np.sort(q_keys)
        idx = np.minimum(np.searchsorted(sorted_q, t_keys), len(sorted_q) - 1)
        hit_text = sorted_q[idx] == t_keys
        hit = np.isin(q_keys, t_keys[hit_text])
        owner = np.searchsorted(queries.starts, q_starts, side="right") - 1
        found[owner[hit]] = True
        return found, t_starts[hit_text]

    def longest(self, queries: Sequence[np.ndarray]) -> np.ndarray:
        """Length of the longest run of each query found in the text (0 when not even one event)."""
        q = _Text(list(queries))
        n = len(q.lengths)
        top = int(q.lengths.max(initial=0))
        found: dict[int, np.ndarray] = {}  # probed length -> per-query result
        starts: dict[int, np.ndarray] = {0: np.arange(len(self.text.values))}  # length -> matching text starts

        def probe(length: int) -> np.ndarray:
            if length not in found:
                below = max(k for k in starts if k < length)
                found[length], starts[length] = self._probe(q, length, starts[below])
            return found[length]

        lo = np.zeros(n, dtype=np.int64)  # a run this long is known to occur
        hi = np.full(n, top + 1, dtype=np.int64)  # known not to
        length = 1
        while length <= top:  # doubling: shared by every query
            ok = probe(length)
            lo = np.where(ok, length, lo)  # (a query that failed a shorter probe fails this one too)
            hi = np.where(ok, hi, np.minimum(hi, length))
            if not ok.any():
                break
            length *= 2
        while True:  # then bisect each query's bracket
            active = lo + 1 < hi
            if not active.any():
                return lo
            mid = (lo + hi) // 2
            for length in np.unique(mid[active]).tolist():
                sel = active & (mid == length)
                ok = probe(length)[sel]
                lo[sel] = np.where(ok, length, lo[sel])
                hi[sel] = np.where(ok, hi[sel], length)


def note_codes(rows: np.ndarray, tokenizer: Tokenizer) -> np.ndarray:
    """Event codes of a piece's notes (BOS/EOS dropped): the alphabet of the copy search."""
    rows = np.asarray(rows).reshape(-1, 4)
    return event_codes(rows[rows[:, PITCH] < BOS], tokenizer.sizes)


# MGEval's note-length classes in beats: whole, half, quarter, 8th, 16th, dotted half, dotted
# quarter, dotted 8th, dotted 16th, half-note triplet, quarter-note triplet, 8th-note triplet.
NOTE_LENGTH_CLASSES = np.array([4, 2, 1, 1 / 2, 1 / 4, 3, 3 / 2, 3 / 4, 3 / 8, 4 / 3, 2 / 3, 1 / 3])


def pitch_class_histogram(notes: Sequence[Note]) -> np.ndarray:
    """12 pitch classes, each weighted by its notes' durations; sums to 1 (zeros if no notes)."""
    hist = np.zeros(12)
    for n in notes:
        hist[n.pitch % 12] += n.duration
    total = hist.sum()
    return hist / total if total > 0 else hist


def note_length_histogram(notes: Sequence[Note]) -> np.ndarray:
    """Count of notes nearest each of MGEval's 12 length classes; sums to 1 (zeros if no notes)."""
    hist = np.zeros(len(NOTE_LENGTH_CLASSES))
    if notes:
        d = np.array([n.duration for n in notes])
        nearest = np.argmin(np.abs(d[:, None] - NOTE_LENGTH_CLASSES[None, :]), axis=1)
        hist = np.bincount(nearest, minlength=len(NOTE_LENGTH_CLASSES)).astype(float)
        hist /= hist.sum()
    return hist


def mean_ioi(notes: Sequence[Note]) -> np.ndarray:
    """Mean inter-onset interval in beats between distinct onsets (0 with fewer than two)."""
    onsets = np.unique(np.round([n.start for n in notes], 6)) if notes else np.zeros(0)
    return np.array([float(np.diff(onsets).mean()) if len(onsets) > 1 else 0.0])


FEATURES: dict[str, Callable[[Sequence[Note]], np.ndarray]] = {
    "pitch_class": pitch_class_histogram,
    "note_length": note_length_histogram,
    "ioi": mean_ioi,
}


def intra_distances(features: np.ndarray) -> np.ndarray:
    """Distances of each piece to every other piece of the same set (MGEval's leave-one-out)."""
    f = np.asarray(features, dtype=float).reshape(len(features), -1)
    d = np.linalg.norm(f[:, None, :] - f[None, :, :], axis=-1)
    return d[~np.eye(len(f), dtype=bool)]


def inter_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances of each piece of ``a`` to each piece of ``b``."""
    fa = np.asarray(a, dtype=float).reshape(len(a), -1)
    fb = np.asarray(b, dtype=float).reshape(len(b), -1)
    return np.linalg.norm(fa[:, None, :] - fb[None, :, :], axis=-1).ravel()


def _scott_bandwidth(x: np.ndarray, floor: float) -> float:
    if len(x) < 2:
        return floor
    return max(float(np.std(x, ddof=1)) * len(x) ** (-1 / 5), floor)


def kde_overlap(a: np.ndarray, b: np.ndarray, grid_points: int = 4096) -> float:
    """Area under min(KDE(a), KDE(b)), Gaussian kernels with Scott's bandwidth, whole real line.

    Densities are binned onto a grid and convolved with the kernel by FFT, so the cost does not
    grow with the number of distances (intra-set distances grow as the square of the pieces).
    """
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    scale = max(float(np.abs(np.concatenate([a, b])).max()), 1e-9)
    floor = 1e-3 * scale  # a set of equal values gets a narrow kernel instead of a zero width
    bw_a, bw_b = _scott_bandwidth(a, floor), _scott_bandwidth(b, floor)
    lo = min(a.min(), b.min()) - 5 * max(bw_a, bw_b)
    hi = max(a.max(), b.max()) + 5 * max(bw_a, bw_b)
    # Grid fine enough for the narrower kernel (>= 6 points per bandwidth), within a sane size.
    points = int(min(max(grid_points, math.ceil((hi - lo) / (min(bw_a, bw_b) / 6))), 1 << 20))
    grid = np.linspace(lo, hi, points)
    dx = grid[1] - grid[0]

    def density(x: np.ndarray, bw: float) -> np.ndarray:
        # Linear binning: each value shares its unit mass between the two nearest grid points.
        pos = (x - lo) / dx
        left = np.clip(np.floor(pos).astype(np.int64), 0, points - 2)
        frac = pos - left
        mass = np.bincount(left, 1 - frac, points) + np.bincount(left + 1, frac, points)
        half = min(int(math.ceil(6 * bw / dx)), points - 1)
        offsets = np.arange(-half, half + 1) * dx
        kernel = np.exp(-0.5 * (offsets / bw) ** 2)
        kernel /= kernel.sum() * dx  # a unit-area kernel on this grid
        size = 1 << int(math.ceil(math.log2(points + len(kernel))))
        conv = np.fft.irfft(np.fft.rfft(mass, size) * np.fft.rfft(kernel, size), size)
        return np.maximum(conv[half : half + points], 0) / len(x)

    overlap = np.minimum(density(a, bw_a), density(b, bw_b)).sum() * dx
    return float(min(overlap, 1.0))


def mgeval_overlap(generated: np.ndarray, real: np.ndarray) -> float:
    """MGEval's relative measure: overlap of intra-set(real) and inter-set(generated, real) distances."""
    if len(real) < 2 or len(generated) < 1:
        return float("nan")
    return kde_overlap(intra_distances(real), inter_distances(generated, real))


def feature_overlaps(generated: Sequence[Sequence[Note]], real: Sequence[Sequence[Note]]) -> dict[str, float]:
    out = {}
    for name, feature in FEATURES.items():
        g = np.array([feature(notes) for notes in generated])
        r = np.array([feature(notes) for notes in real])
        out[f"{name}_overlap"] = mgeval_overlap(g, r)
    return out


def excerpt(rows: np.ndarray, length: int) -> np.ndarray:
    """The first ``length`` note events of a piece (BOS/EOS dropped)."""
    rows = np.asarray(rows)
    return rows[rows[:, PITCH] < BOS][:length]
