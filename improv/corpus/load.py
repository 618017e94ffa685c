"""Sources -> pieces of tokens: the one entry point, ``load_corpus``, and what it returns.

``load_corpus(sources, tokenizer, settings)`` is what `improv corpus`, `train`, `eval` and the
demo call. It puts together the modules of this room, each with one job:

* ``sources`` — which files the sources name (MIDI files, folders, ``music21:NAME``);
* ``cache`` — what reading a file gave before (its notes, and tokens for the last tokenizer);
* ``pool`` — the files left to read, in worker processes within limits of time and memory;
* ``reader`` — one file -> works (notes) -> token rows.

A cached file whose tokens were made by another tokenizer is re-encoded from its cached notes
here (fast), never parsed again. Bad files end up in ``CorpusReport.skipped`` with their reason,
never as an exception.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from improv.corpus.cache import Cache, cache_key, open_cache
from improv.corpus.pool import Job, Limits, run_jobs
from improv.corpus.reader import FileResult, tokenize, tokenizer_recipe
from improv.corpus.sources import (
    ANALYSIS_REASON,
    SourceFile,
    file_kind,
    resolve_sources,
)
from improv.io.files import FileProblem, read_regular_file
from improv.io.machine import usable_cores
from improv.music.rhythm import beats_per_bar
from improv.music.tokenizer import BOS, PITCH, Tokenizer
from improv.settings.sections import CorpusSettings


@dataclass
class Piece:
    name: str  # the file as the user named it (or music21:PATH); "#N" appended for one work of many
    tokens: np.ndarray  # (N, 4) uint8 rows: BOS, notes..., EOS (Tokenizer.encode)
    bpm: float | None = None  # tempo of the source at its first note (None: a score without one)
    meter: tuple[int, int] | None = None  # its first time signature, if it states one
    source: str = ""  # the source (as given to load_corpus) it came from: training splits within each

    @property
    def beats_per_bar(self) -> float:
        """Quarter-note beats in a bar of its metre (4 when it states none)."""
        return beats_per_bar(self.meter)


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
    files: int  # source files named
    parsed: int  # files that gave at least one piece
    skipped: list[Skipped]
    events: int  # note events in all pieces (BOS/EOS not counted)
    roundtrip_recall: float | None  # None unless measured
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
    limits = Limits(settings.file_timeout_s, int(settings.max_file_mb * 1e6), int(settings.worker_memory_mb * 2**20))
    results, jobs, cached = _from_cache(files, cache, tokenizer, measure_recall, limits)
    workers = 0
    if jobs:
        workers = min(settings.workers or usable_cores(), len(jobs))
        show = sys.stderr.isatty() if progress is None else progress
        for job, key, result in run_jobs(jobs, tokenizer.settings, measure_recall, limits, workers, show):
            results[job.name] = result
            if cache and key and result.cacheable:
                cache.store(key, result)
    pieces, report = _assemble(files, results, measure_recall)
    report.cached, report.workers, report.warnings = cached, workers, warn
    report.cache_dir = str(cache.folder) if cache else None
    report.seconds = round(time.perf_counter() - started, 4)
    return pieces, report


def _from_cache(
    files: list[SourceFile], cache: Cache | None, tokenizer: Tokenizer, measure_recall: bool, limits: Limits
) -> tuple[dict[str, FileResult], list[Job], int]:
    """What is known without parsing (skips found by looking, the cache's answers, re-encoded from
    cached notes where the tokenizer changed), the files left to parse, and the cache hits."""
    results: dict[str, FileResult] = {}
    jobs: list[Job] = []
    hits = 0
    recipe = tokenizer_recipe(tokenizer)
    for f in files:
        kind = file_kind(f.path)
        if f.problem is not None:
            results[f.name] = FileResult(skip=f.problem, cacheable=False)
            continue
        if kind == "analysis":
            results[f.name] = FileResult(skip=ANALYSIS_REASON)
            continue
        hit = None
        if cache:
            try:
                key = cache_key(read_regular_file(f.path, limits.file_bytes), kind)
            except FileProblem:
                key = None  # the worker says why
            hit = cache.load(key, recipe, tokenizer.sizes) if key else None
        if hit is None:
            jobs.append(Job(f.name, str(f.path), kind))
            continue
        hits += 1
        stale = hit.tokens is None or (measure_recall and hit.tokens.kept is None)
        if hit.skip is None and stale:
            hit.tokens = tokenize(hit.works, tokenizer, measure_recall)
            cache.store(key, hit)  # type: ignore[union-attr,arg-type]
        results[f.name] = hit
    return results, jobs, hits


def _assemble(files: list[SourceFile], results: dict[str, FileResult], measure_recall: bool) -> tuple[list[Piece], CorpusReport]:
    pieces: list[Piece] = []
    skipped: list[Skipped] = []
    kept = total = 0
    for f in files:
        result = results[f.name]
        if result.skip is not None or result.tokens is None:
            skipped.append(Skipped(f.name, result.skip or "not read"))
            continue
        for work, rows in zip(result.works, result.tokens.rows):
            pieces.append(Piece(f.name + work.suffix, rows, work.bpm, work.meter, f.source))
        kept += result.tokens.kept or 0
        total += result.tokens.total or 0
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
