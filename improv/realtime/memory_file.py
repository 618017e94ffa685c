"""A session memory kept between sets (``serve --memory FILE``): the remembered events and what
each counts, as an npz file (no pickle); a file improv did not write is one clear line."""

from __future__ import annotations

import io
import zipfile

import numpy as np

from improv.errors import ImprovError
from improv.music.tokenizer import DURATION, OFFSET, PITCH, VELOCITY
from improv.realtime.memory import MAX_EVENTS, SessionMemory

FORMAT = 1  # of the saved file
MAX_MEMORY_BYTES = 8 * MAX_EVENTS * 4 + 1_000_000  # a saved memory is never larger than this


class MemoryFileError(ImprovError):
    """A saved session memory that cannot be read."""


def memory_bytes(memory: SessionMemory, now: float) -> bytes:
    """The remembered events and what each counts now."""
    while memory.pending:
        memory.absorb()
    rows = np.array([r for r, _, _ in memory.remembered], dtype=np.uint8).reshape(-1, 4)
    weights = np.array([w for _, w, _ in memory.remembered], dtype=np.float64) * memory.scale(now)
    ends = np.array([any(key[0] == "ending" for key in keys) for _, _, keys in memory.remembered], dtype=bool)  # a phrase's last note
    buf = io.BytesIO()
    np.savez(buf, format=np.array(FORMAT), sizes=np.array(memory.tokenizer.sizes), rows=rows, weights=weights, ends=ends)
    return buf.getvalue()


def load_memory_bytes(memory: SessionMemory, data: bytes, name: str = "memory") -> None:
    """A saved memory replaces ``memory``'s (as if it had just been played); a bad file raises
    ``MemoryFileError`` naming what is wrong."""
    if data[:4] != b"PK\x03\x04":
        raise MemoryFileError(f"{name} is not a session memory improv wrote (not an .npz file)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            fmt, sizes, rows, weights = (z[k] for k in ("format", "sizes", "rows", "weights"))
            ends = z["ends"] if "ends" in z.files else np.zeros(len(rows), dtype=bool)  # files saved before phrase endings were kept
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise MemoryFileError(f"{name} is not a session memory improv wrote ({type(exc).__name__}: {str(exc)[:80]})") from None
    if fmt.shape != () or int(fmt) != FORMAT:
        raise MemoryFileError(f"{name}: memory format {fmt!s:.20} (this improv reads {FORMAT})")
    if tuple(sizes.tolist()) != tuple(memory.tokenizer.sizes):
        raise MemoryFileError(f"{name}: made for another vocabulary {tuple(sizes.tolist())!s:.60} (the voice's: {tuple(memory.tokenizer.sizes)})")
    if rows.ndim != 2 or rows.shape[1] != 4 or rows.dtype != np.uint8 or weights.shape != (len(rows),) or ends.shape != (len(rows),) or ends.dtype != bool:
        raise MemoryFileError(f"{name}: rows of shape {rows.shape}, weights {weights.shape}, ends {ends.shape} (expected (N, 4) uint8, (N,), (N,) bool)")
    bad = (rows[:, PITCH] >= 128) | (rows[:, OFFSET] >= sizes[OFFSET]) | (rows[:, DURATION] >= sizes[DURATION]) | (rows[:, VELOCITY] >= sizes[VELOCITY])
    if bad.any() or not np.isfinite(weights).all() or (weights < 0).any():
        raise MemoryFileError(f"{name}: event {int(np.argmax(bad)) if bad.any() else 'weights'} out of range")
    memory.forget()
    for row, w, end in zip(rows[-memory.max_events :], weights[-memory.max_events :], ends[-memory.max_events :]):
        memory.learn(row, weight=float(w), last=bool(end))  # counted as much as when saved; time runs from the first use
