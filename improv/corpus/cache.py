"""The corpus cache: what reading a source file gave, keyed by what could change it.

One entry per source file: its works' notes (the slow part: music21 parses a score in seconds),
and the token rows of the last tokenizer they were encoded with. The key hashes the file's content,
``reader.READER_VERSION`` and (for scores) music21's version, not the tokenizer: a changed
tokenizer setting re-encodes the cached notes (fast) instead of parsing the file again.
Deterministic failures are cached too, so a known-bad file is not re-parsed until it changes;
timeouts and crashes are not.

An entry is magic, header length, a JSON header, then the notes and the token rows. Whatever is
read back is checked before use (magic, key, checksum, lengths, and every value in range), so a
damaged or crafted entry counts as absent and is rebuilt, never a crash further on.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from improv.corpus.reader import READER_VERSION, FileResult, Tokens, Work
from improv.io.files import write_atomic
from improv.music.notes import NOTE_DTYPE
from improv.music.tokenizer import TOKEN_DTYPE
from improv.settings.sections import CorpusSettings

_MAGIC = b"IMPROV-CORPUS\x00\x02"
SUFFIX = ".corpus"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "improv" / "corpus"


def open_cache(settings: CorpusSettings) -> tuple[Cache | None, list[str]]:
    if not settings.cache:
        return None, []
    folder = Path(settings.cache_dir).expanduser() if settings.cache_dir else default_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return None, [f"cache off: cannot create {folder} ({exc.strerror or exc})"]
    return Cache(folder), []


def cache_key(data: bytes, kind: str) -> str:
    """Content + everything that changes what the reader makes of it."""
    h = hashlib.blake2b(digest_size=20)
    recipe = {"reader": READER_VERSION, "kind": kind, "music21": _music21_version() if kind == "music21" else None}
    h.update(json.dumps(recipe, sort_keys=True).encode())
    h.update(b"\x00")
    h.update(data)
    return h.hexdigest()


@lru_cache(maxsize=1)
def _music21_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("music21")
    except PackageNotFoundError:
        return "absent"


class Cache:
    """One file per source file; writes are atomic, and an entry that does not read back exactly
    (or holds a value out of range for ``sizes``, the tokenizer's class counts) counts as absent."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}{SUFFIX}"

    def load(self, key: str, recipe: str, sizes: tuple[int, ...]) -> FileResult | None:
        """The entry for ``key``, its tokens only if made by ``recipe`` (else None: re-encode)."""
        try:
            blob = self._path(key).read_bytes()
        except OSError:
            return None
        try:
            return _decode_entry(blob, key, recipe, sizes)
        except (ValueError, KeyError, TypeError, IndexError, OverflowError):
            return None  # damaged: parse again and overwrite

    def store(self, key: str, result: FileResult) -> None:
        try:
            write_atomic(self._path(key), _encode_entry(result, key))
        except OSError:
            pass  # a cache that cannot be written only costs time


def _encode_entry(result: FileResult, key: str) -> bytes:
    notes = b"".join(np.ascontiguousarray(w.notes, dtype=NOTE_DTYPE).tobytes() for w in result.works)
    tokens = result.tokens
    rows = b"".join(np.ascontiguousarray(r, dtype=TOKEN_DTYPE).tobytes() for r in tokens.rows) if tokens else b""
    payload = notes + rows
    header = {
        "key": key,
        "skip": result.skip,
        "works": [{"suffix": w.suffix, "notes": len(w.notes), "bpm": w.bpm, "meter": list(w.meter) if w.meter else None} for w in result.works],
        "tokens": {"recipe": tokens.recipe, "rows": [len(r) for r in tokens.rows], "kept": tokens.kept, "total": tokens.total} if tokens else None,
        "digest": hashlib.blake2b(payload, digest_size=16).hexdigest(),
    }
    head = json.dumps(header).encode()
    return _MAGIC + len(head).to_bytes(4, "little") + head + payload


def _decode_entry(blob: bytes, key: str, recipe: str, sizes: tuple[int, ...]) -> FileResult:
    if not blob.startswith(_MAGIC):
        raise ValueError("bad magic")
    at = len(_MAGIC)
    size = int.from_bytes(blob[at : at + 4], "little")
    header = json.loads(blob[at + 4 : at + 4 + size])
    payload = memoryview(blob)[at + 4 + size :]
    if header["key"] != key or hashlib.blake2b(payload, digest_size=16).hexdigest() != header["digest"]:
        raise ValueError("bad key or checksum")
    if header["skip"] is not None:
        return FileResult(skip=str(header["skip"]))
    counts = [int(w["notes"]) for w in header["works"]]
    note_bytes = sum(counts) * NOTE_DTYPE.itemsize
    notes = np.frombuffer(bytes(payload[:note_bytes]), dtype=NOTE_DTYPE).copy()
    _check_notes(notes)
    works, row = [], 0
    for w, n in zip(header["works"], counts):
        meter = tuple(int(x) for x in w["meter"]) if w["meter"] else None
        works.append(Work(str(w["suffix"]), notes[row : row + n], _bpm(w["bpm"]), meter))  # type: ignore[arg-type]
        row += n
    tokens = None
    t = header["tokens"]
    if t is not None and t["recipe"] == recipe:
        lengths = [int(n) for n in t["rows"]]
        if len(lengths) != len(works):
            raise ValueError("tokens of another number of works")
        table = np.frombuffer(bytearray(payload[note_bytes:]), dtype=TOKEN_DTYPE).reshape(-1, 4)  # bytearray: writable rows
        if len(table) != sum(lengths):
            raise ValueError("bad length")
        _check_rows(table, sizes)
        rows, at = [], 0
        for n in lengths:
            rows.append(table[at : at + n])
            at += n
        tokens = Tokens(str(t["recipe"]), rows, _count(t["kept"]), _count(t["total"]))
    elif len(payload) < note_bytes:
        raise ValueError("bad length")
    return FileResult(works=works, tokens=tokens)


def _check_notes(notes: np.ndarray) -> None:
    if len(notes) and (
        notes["pitch"].max() > 127 or notes["velocity"].max() > 127
        or not np.isfinite(notes["start"]).all() or not np.isfinite(notes["duration"]).all()
        or notes["start"].min() < 0 or notes["duration"].min() < 0
    ):  # fmt: skip
        raise ValueError("a note out of range")


def _check_rows(table: np.ndarray, sizes: tuple[int, ...]) -> None:
    if len(table) and any(int(table[:, field].max()) >= size for field, size in enumerate(sizes)):
        raise ValueError("a token out of range")


def _bpm(value: object) -> float | None:
    if value is None:
        return None
    bpm = float(value)  # type: ignore[arg-type]
    if not math.isfinite(bpm) or bpm <= 0:
        raise ValueError("a bad tempo")
    return bpm


def _count(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]
