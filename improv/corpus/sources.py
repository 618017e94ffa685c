"""Corpus sources -> the files they name: MIDI files, folders, and music21's bundled corpus.

A source is a MIDI file, a folder (searched recursively for MIDI and score files, hidden files and
folders left out) or ``music21:NAME``, a composer, collection or work of the corpus bundled with
music21 (``music21:bach``, ``music21:essenFolksong``, ``music21:bach/bwv66.6``). music21 names are
resolved from its corpus folder on disk, without importing music21 (~0.3 s). A source that names
nothing is an ``ImprovError`` with a hint (the closest name in the folder, or the composers there are).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

from improv.errors import ImprovError
from improv.io.files import file_problem

MIDI_EXTENSIONS = (".mid", ".midi")
# music21's score formats that improv reads (matched case-insensitively), by preference: when the
# corpus holds one work in several formats (bach/bwv277.krn and .mxl), the first one listed wins.
SCORE_EXTENSIONS = (".mxl", ".musicxml", ".xml", ".krn", ".mei", ".abc", ".capx")
# Roman-numeral analyses parse into chords, but they are harmonic reductions, not music to learn.
ANALYSIS_EXTENSIONS = (".rntxt",)
READABLE_EXTENSIONS = MIDI_EXTENSIONS + SCORE_EXTENSIONS + ANALYSIS_EXTENSIONS
ANALYSIS_REASON = "a Roman-numeral analysis (.rntxt): harmonies, not a score to learn from"

MUSIC21_PREFIX = "music21:"


@dataclass(frozen=True)
class SourceFile:
    path: Path  # where to read it
    name: str  # how pieces and reports name it: the path as given, or music21:RELATIVE/PATH
    source: str = ""  # the source string that named it
    problem: str | None = None  # why it cannot be read (a link loop, a FIFO, a device), found by looking


def resolve_sources(sources: Sequence[str]) -> list[SourceFile]:
    """Source strings -> the files they name, each once, in the order given (folders sorted)."""
    if not sources:
        raise ImprovError("no corpus sources given (name MIDI files, folders or music21:NAME)")
    out: list[SourceFile] = []
    seen: set[str] = set()
    for source in sources:
        for f in _resolve_one(str(source)):
            real = os.path.realpath(f.path)  # never raises, even on a link loop (Path.resolve does)
            if real not in seen:
                seen.add(real)
                out.append(dataclasses.replace(f, source=str(source), problem=file_problem(f.path)))
    return out


def _resolve_one(source: str) -> list[SourceFile]:
    if source.startswith(MUSIC21_PREFIX):
        return music21_works(source[len(MUSIC21_PREFIX):])
    path = Path(source).expanduser()
    if path.is_symlink() and not path.exists():
        problem = file_problem(path)
        raise ImprovError(f"cannot read {source}: {problem}")
    if path.exists() and not path.is_dir():
        return [SourceFile(path, source)]  # a FIFO or a device is refused, with its reason, when read
    if path.is_dir():
        found = [
            SourceFile(p, (Path(source) / p.relative_to(path)).as_posix())
            for p in sorted(_walk(path))
            if p.suffix.lower() in READABLE_EXTENSIONS
        ]
        if not found:
            raise ImprovError(f"no MIDI or score files under {source} (looked for {', '.join(READABLE_EXTENSIONS)})")
        return found
    raise ImprovError(f"no such file or folder: {source}{_nearby(path)}")


def _nearby(path: Path) -> str:
    """A hint for a mistyped path: the closest name in its folder, or that the folder is missing."""
    parent = path.parent
    if not parent.is_dir():
        return f" ({parent} does not exist either)" if str(parent) not in ("", ".") else ""
    try:
        names = [p.name for p in parent.iterdir() if not p.name.startswith(".")]
    except OSError:
        return ""
    close = difflib.get_close_matches(path.name, names, n=1)
    return f" (did you mean {parent / close[0]}?)" if close else ""


def _walk(folder: Path) -> Iterable[Path]:
    """Files under ``folder``, recursively; hidden files and folders (.git, ._x.mid) left out."""
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
        for name in names:
            if not name.startswith("."):
                yield Path(root) / name


def music21_corpus_dir() -> Path:
    """The folder of music21's bundled corpus, found without importing music21 (~0.3 s)."""
    spec = importlib.util.find_spec("music21")
    if spec is None or not spec.submodule_search_locations:
        raise ImprovError("music21 is not installed, so music21:NAME sources cannot be read")
    folder = Path(list(spec.submodule_search_locations)[0]) / "corpus"
    if not folder.is_dir():
        raise ImprovError(f"this music21 install has no bundled corpus ({folder} is missing)")
    return folder


@lru_cache(maxsize=4)
def _corpus_listing(folder: Path) -> tuple[tuple[str, ...], ...]:
    """Relative paths (as path parts) of the readable works, one format per work."""
    by_work: dict[str, tuple[int, tuple[str, ...]]] = {}
    rank = {ext: i for i, ext in enumerate(SCORE_EXTENSIONS + MIDI_EXTENSIONS + ANALYSIS_EXTENSIONS)}
    for path in _walk(folder):
        ext = path.suffix.lower()
        if ext not in rank:
            continue
        rel = path.relative_to(folder)
        work = rel.with_suffix("").as_posix().lower()
        if work not in by_work or rank[ext] < by_work[work][0]:
            by_work[work] = (rank[ext], rel.parts)
    return tuple(sorted(parts for _, parts in by_work.values()))


def music21_works(name: str) -> list[SourceFile]:
    """The works music21's corpus holds under ``name``: a composer or collection (any folder or
    file name, as ``music21.corpus.getComposer`` matches), or a work path such as bach/bwv66.6."""
    folder = music21_corpus_dir()
    wanted = name.strip().strip("/").lower()
    listing = _corpus_listing(folder)
    matches = [parts for parts in listing if wanted and _matches(parts, wanted)]
    if not matches:
        known = sorted({parts[0] for parts in listing if len(parts) > 1})
        close = difflib.get_close_matches(wanted, [k.lower() for k in known], n=1)
        hint = f" (did you mean music21:{known[[k.lower() for k in known].index(close[0])]}?)" if close else ""
        raise ImprovError(
            f"music21's corpus has no composer, collection or work {name!r}{hint}; it holds: {', '.join(known)}"
        )
    return [SourceFile(folder.joinpath(*parts), MUSIC21_PREFIX + "/".join(parts)) for parts in matches]


def _matches(parts: tuple[str, ...], wanted: str) -> bool:
    if "/" in wanted:  # a path inside the corpus: a folder, a file, or a file without its extension
        rel = "/".join(parts).lower()
        return rel == wanted or rel.startswith(wanted + "/") or rel.rsplit(".", 1)[0] == wanted
    stubs = [p.lower() for p in parts[:-1]] + [parts[-1].lower().rsplit(".", 1)[0]]
    return wanted in stubs


def file_kind(path: Path) -> str:
    """Which reader a file goes to: midi, music21 or analysis (skipped). Unknown -> MIDI."""
    ext = path.suffix.lower()
    if ext in SCORE_EXTENSIONS:
        return "music21"
    if ext in ANALYSIS_EXTENSIONS:
        return "analysis"
    return "midi"
