"""Sources -> pieces of tokens: the one entry point, ``load_corpus``, and what it returns.

``load_corpus(sources, tokenizer, settings)`` is called by ``improv corpus``, ``improv train``,
``improv eval`` and the demo. It puts together the modules that each do one job:

* ``sources`` — which files the sources name (MIDI files, folders, ``music21:NAME``);
* ``corpus_cache`` — token rows already parsed, keyed by file content and tokenizer settings;
* ``workers`` — the files left to parse, in worker processes with a time limit per file;
* ``file_reader`` / ``score_reader`` — one file -> notes -> token rows (mido for MIDI, music21 for
  its own formats).

Bad files end up in ``CorpusReport.skipped`` with their reason, never as an exception. The names
other modules use (``resolve_sources``, ``music21_works``, ``default_cache_dir``, ...) are
importable from here too.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from improv.settings.sections import CorpusSettings, TokenizerSettings
from improv.corpus.cache import Cache, cache_key, default_cache_dir, open_cache
from improv.corpus.reader import FileResult
from improv.music.scores import notes_from_music21, read_music21
from improv.corpus.sources import ANALYSIS_REASON, SourceFile, file_kind, music21_corpus_dir, music21_works, resolve_sources
from improv.io.machine import usable_cores
from improv.music.tokenizer import BOS, PITCH, Tokenizer
from improv.corpus.pool import Job, run_jobs

# The names other modules and the tests use, whichever module now holds them.
__all__ = [
    "ANALYSIS_REASON",
    "CorpusReport",
    "Piece",
    "Skipped",
    "SourceFile",
    "default_cache_dir",
    "load_corpus",
    "music21_corpus_dir",
    "music21_works",
    "notes_from_music21",
    "read_music21",
    "resolve_sources",
]


@dataclass
class Piece:
    name: str  # the file as the user named it (or music21:PATH); "#N" appended for one work of many
    tokens: np.ndarray  # (N, 4) uint8 rows: BOS, notes..., EOS (Tokenizer.encode)
    bpm: float | None = None  # tempo of the source at its first note (None: a score without one)


@dataclass
class Skipped:
    path: str
    reason: str


def skipped_lines(skipped: Sequence[Skipped], limit: int = 8) -> list[str]:
    """The skipped files for a log, grouped by reason (most first): ``reason: path`` for one file,
    ``reason: N files, e.g. path`` for several; at most ``limit`` lines, then how many more."""
    groups: dict[str, list[str]] = {}
    for s in skipped:
        groups.setdefault(s.reason, []).append(s.path)
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    lines = [f"{paths[0]}: {reason}" if len(paths) == 1 else f"{len(paths)} files, e.g. {paths[0]}: {reason}" for reason, paths in ordered[:limit]]
    rest = sum(len(paths) for _, paths in ordered[limit:])
    if rest:
        lines.append(f"... and {rest} more files (`improv corpus` lists every one)")
    return lines


@dataclass
class CorpusReport:
    files: int  # source files found
    parsed: int  # files that gave at least one piece
    skipped: list[Skipped]  # the others, with the reason
    events: int  # note events in all pieces (BOS/EOS not counted)
    roundtrip_recall: float | None  # share of notes whose pitch and grid onset survive; None if not measured
    seconds: float  # wall time of load_corpus
    cached: int  # files answered by the cache (parsed or skipped)
    pieces: int = 0
    token_bytes: int = 0  # memory of all token arrays
    notes_kept: int = 0  # recall numerator and denominator
    notes_total: int = 0
    workers: int = 0  # parser processes started (0 when everything came from the cache)
    cache_dir: str | None = None  # None: cache off
    warnings: list[str] = field(default_factory=list)

    @property
    def events_per_file(self) -> float:
        return self.events / self.parsed if self.parsed else 0.0

    @property
    def bytes_per_event(self) -> float:
        return self.token_bytes / self.events if self.events else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["events_per_file"] = round(self.events_per_file, 2)
        out["bytes_per_event"] = round(self.bytes_per_event, 4)
        return out


def load_corpus(
    sources: Sequence[str],
    tokenizer: Tokenizer,
    settings: CorpusSettings,
    *,
    progress: bool | None = None,
    measure_recall: bool = False,
) -> tuple[list[Piece], CorpusReport]:
    """Every source file -> pieces of tokens, sorted by name; bad files are reported, not raised.

    ``progress``: a bar on stderr (None = only when stderr is a terminal). ``measure_recall``:
    also measure the round trip (encode -> decode -> MIDI -> read back) of every file.
    Raises ``ImprovError`` only for a source that names nothing (a missing path, an unknown
    music21 name).
    """
    started = time.perf_counter()
    files = resolve_sources(sources)
    cache, warn = open_cache(settings)
    results, jobs, cached = _from_cache(files, cache, tokenizer.settings, measure_recall)
    workers = 0
    if jobs:
        workers = min(settings.workers or usable_cores(), len(jobs))
        show = sys.stderr.isatty() if progress is None else progress
        for job, key, result in run_jobs(jobs, tokenizer.settings, measure_recall, settings.file_timeout_s, workers, show):
            results[job.name] = result
            if cache and key and result.cacheable:
                cache.store(key, result)
    pieces, report = _assemble(files, results, measure_recall)
    report.cached, report.workers, report.warnings = cached, workers, warn
    report.cache_dir = str(cache.folder) if cache else None
    report.seconds = round(time.perf_counter() - started, 4)
    return pieces, report


def _from_cache(
    files: list[SourceFile], cache: Cache | None, tokenizer_settings: TokenizerSettings, measure_recall: bool
) -> tuple[dict[str, FileResult], list[Job], int]:
    """What the cache already knows (and the analyses, skipped unread), the files left to parse,
    and the number of cache hits."""
    results: dict[str, FileResult] = {}
    jobs: list[Job] = []
    hits = 0
    for f in files:
        kind = file_kind(f.path)
        if kind == "analysis":
            results[f.name] = FileResult(skip=ANALYSIS_REASON)
            continue
        hit = None
        if cache:
            try:
                hit = cache.load(cache_key(f.path.read_bytes(), kind, tokenizer_settings))
            except OSError:
                hit = None  # unreadable: the worker says why
        if hit is not None and (hit.skip or hit.kept is not None or not measure_recall):
            results[f.name] = hit
            hits += 1
        else:
            jobs.append(Job(f.name, str(f.path), kind))
    return results, jobs, hits


def _assemble(files: list[SourceFile], results: dict[str, FileResult], measure_recall: bool) -> tuple[list[Piece], CorpusReport]:
    pieces: list[Piece] = []
    skipped: list[Skipped] = []
    kept = total = 0
    for f in files:
        result = results[f.name]
        if result.skip is not None:
            skipped.append(Skipped(f.name, result.skip))
            continue
        for suffix, rows, bpm in result.pieces:
            pieces.append(Piece(f.name + suffix, rows, bpm))
        kept += result.kept or 0
        total += result.total or 0
    pieces.sort(key=lambda p: p.name)
    skipped.sort(key=lambda s: s.path)
    events = sum(int(np.count_nonzero(p.tokens[:, PITCH] < BOS)) for p in pieces)
    report = CorpusReport(
        files=len(files),
        parsed=len(files) - len(skipped),
        skipped=skipped,
        events=events,
        roundtrip_recall=(round(kept / total, 6) if total else None) if measure_recall else None,
        seconds=0.0,
        cached=0,
        pieces=len(pieces),
        token_bytes=sum(p.tokens.nbytes for p in pieces),
        notes_kept=kept if measure_recall else 0,
        notes_total=total if measure_recall else 0,
    )
    return pieces, report
