"""The corpus cache: parsed token rows per source file, keyed by what could change them.

One file per source file: magic, header length, JSON header, then the token rows. The key hashes
the file's content, the tokenizer settings, ``file_reader.READER_VERSION``, the tokenizer's
``ENCODING_VERSION`` and (for scores) music21's version; deterministic failures are cached too, so
a known-bad file is not re-parsed until its content changes. Timeouts and crashes are not cached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from improv.settings.sections import CorpusSettings, TokenizerSettings
from improv.corpus.reader import READER_VERSION, FileResult
from improv.music.tokenizer import ENCODING_VERSION, TOKEN_DTYPE

_MAGIC = b"IMPROV-TOKENS\x00"


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


def cache_key(data: bytes, kind: str, tokenizer_settings: TokenizerSettings) -> str:
    """Content + everything that changes what the reader and tokenizer make of it."""
    h = hashlib.blake2b(digest_size=20)
    recipe = {
        "reader": READER_VERSION,
        "kind": kind,
        "tokenizer": dataclasses.asdict(tokenizer_settings),
        "encoding": ENCODING_VERSION,
        "music21": _music21_version() if kind == "music21" else None,
    }
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
    """One file per source file: magic, header length, JSON header, then the token rows.

    Writes are atomic (a temporary file renamed into place); an entry that does not read back
    exactly (bad magic, header, length or checksum) counts as absent and is rewritten.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.tok"

    def load(self, key: str) -> FileResult | None:
        try:
            blob = self._path(key).read_bytes()
        except OSError:
            return None
        try:
            return _decode_entry(blob, key)
        except (ValueError, KeyError, TypeError, IndexError):
            return None  # corrupt: parse again and overwrite

    def store(self, key: str, result: FileResult) -> None:
        blob = _encode_entry(result, key)
        tmp = None
        try:
            with tempfile.NamedTemporaryFile(dir=self.folder, prefix=f".{key}.", suffix=".tmp", delete=False) as out:
                tmp = out.name
                out.write(blob)
            os.replace(tmp, self._path(key))
        except OSError:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass


def _encode_entry(result: FileResult, key: str) -> bytes:
    payload = b"".join(np.ascontiguousarray(rows, dtype=TOKEN_DTYPE).tobytes() for _, rows, _ in result.pieces)
    header = {
        "key": key,
        "skip": result.skip,
        "pieces": [{"suffix": s, "rows": int(len(r)), "bpm": b} for s, r, b in result.pieces],
        "kept": result.kept,
        "total": result.total,
        "digest": hashlib.blake2b(payload, digest_size=16).hexdigest(),
    }
    head = json.dumps(header).encode()
    return _MAGIC + len(head).to_bytes(4, "little") + head + payload


def _decode_entry(blob: bytes, key: str) -> FileResult:
    if not blob.startswith(_MAGIC):
        raise ValueError("bad magic")
    at = len(_MAGIC)
    size = int.from_bytes(blob[at : at + 4], "little")
    header = json.loads(blob[at + 4 : at + 4 + size])
    payload = memoryview(blob)[at + 4 + size :]
    if header["key"] != key or hashlib.blake2b(payload, digest_size=16).hexdigest() != header["digest"]:
        raise ValueError("bad key or checksum")
    counts = [int(p["rows"]) for p in header["pieces"]]
    if sum(counts) * 4 != len(payload):
        raise ValueError("bad length")
    table = np.frombuffer(bytearray(payload), dtype=TOKEN_DTYPE).reshape(-1, 4)  # bytearray: writable rows
    pieces, row = [], 0
    for p, n in zip(header["pieces"], counts):
        pieces.append((str(p["suffix"]), table[row : row + n], p["bpm"]))
        row += n
    return FileResult(skip=header["skip"], pieces=pieces, kept=header["kept"], total=header["total"])
