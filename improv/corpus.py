"""Sources -> pieces of tokens: MIDI files, folders and music21's corpus; cache; worker processes.

``load_corpus(sources, tokenizer, settings)`` is the one entry point (``improv corpus`` and
``improv train`` call it). A source is a MIDI file, a folder (searched recursively for MIDI and
score files) or ``music21:NAME``, a composer, collection or work of the corpus bundled with music21
(``music21:bach``, ``music21:essenFolksong``, ``music21:bach/bwv66.6``).

* MIDI goes through ``midi_io.read_midi`` (mido, ~30x faster than music21 on MIDI); music21's
  own formats (MusicXML, Humdrum, ABC, MEI, ...) through music21, which only this module imports,
  and only when such a file has to be parsed (a fully cached run never imports it).
* Files are parsed in worker processes, one file at a time each, with a time limit per file; a file
  that fails, times out or kills its worker is skipped with its reason and the rest goes on.
* Results are cached per file, keyed by the file's content, the tokenizer settings and
  ``READER_VERSION``; deterministic failures are cached too, so a known-bad file is not re-parsed
  until its content changes.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import hashlib
import importlib.util
import json
import multiprocessing
import os
import signal
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from multiprocessing.connection import wait as wait_connections
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .config import CorpusSettings, TokenizerSettings
from .errors import ImprovError, MIDIConversionError
from .events import Note
from .midi_io import Track, midi_bytes, read_midi
from .tokenizer import BOS, ENCODING_VERSION, PITCH, TOKEN_DTYPE, Tokenizer

# Bump when a change in the readers changes the notes they produce: it invalidates every cache entry.
READER_VERSION = 1

MIDI_EXTENSIONS = (".mid", ".midi")
# music21's score formats that improv reads (matched case-insensitively), by preference: when the
# corpus holds one work in several formats (bach/bwv277.krn and .mxl), the first one listed wins.
SCORE_EXTENSIONS = (".mxl", ".musicxml", ".xml", ".krn", ".mei", ".abc", ".capx")
# Roman-numeral analyses parse into chords, but they are harmonic reductions, not music to learn.
ANALYSIS_EXTENSIONS = (".rntxt",)
READABLE_EXTENSIONS = MIDI_EXTENSIONS + SCORE_EXTENSIONS + ANALYSIS_EXTENSIONS
ANALYSIS_REASON = "a Roman-numeral analysis (.rntxt): harmonies, not a score to learn from"

MUSIC21_PREFIX = "music21:"


# ---- the API ---------------------------------------------------------------------------------


@dataclass
class Piece:
    name: str  # the file as the user named it (or music21:PATH); "#N" appended for one work of many
    tokens: np.ndarray  # (N, 4) uint8 rows: BOS, notes..., EOS (Tokenizer.encode)
    path: str = ""  # the file it came from (as named); several pieces share it for an ABC collection
    bpm: float | None = None  # tempo of the source at its first note (None: a score without one)


@dataclass
class Skipped:
    path: str
    reason: str


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
    cache, warn = _open_cache(settings)
    results, jobs, cached = _from_cache(files, cache, tokenizer.settings, measure_recall)
    workers = 0
    if jobs:
        workers = min(settings.workers or _cores(), len(jobs))
        show = sys.stderr.isatty() if progress is None else progress
        for job, key, result in _run_jobs(jobs, tokenizer.settings, measure_recall, settings.file_timeout_s, workers, show):
            results[job.name] = result
            if cache and key and result.cacheable:
                cache.store(key, result)
    pieces, report = _assemble(files, results, measure_recall)
    report.cached, report.workers, report.warnings = cached, workers, warn
    report.cache_dir = str(cache.folder) if cache else None
    report.seconds = round(time.perf_counter() - started, 4)
    return pieces, report


def _from_cache(
    files: list[SourceFile], cache: _Cache | None, tokenizer_settings: TokenizerSettings, measure_recall: bool
) -> tuple[dict[str, _FileResult], list[_Job], int]:
    """What the cache already knows (and the analyses, skipped unread), the files left to parse,
    and the number of cache hits."""
    results: dict[str, _FileResult] = {}
    jobs: list[_Job] = []
    hits = 0
    for f in files:
        kind = _kind(f.path)
        if kind == "analysis":
            results[f.name] = _FileResult(skip=ANALYSIS_REASON)
            continue
        hit = None
        if cache:
            try:
                hit = cache.load(_cache_key(f.path.read_bytes(), kind, tokenizer_settings))
            except OSError:
                hit = None  # unreadable: the worker says why
        if hit is not None and (hit.skip or hit.kept is not None or not measure_recall):
            results[f.name] = hit
            hits += 1
        else:
            jobs.append(_Job(f.name, str(f.path), kind))
    return results, jobs, hits


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (containers, taskset)
    except AttributeError:
        return os.cpu_count() or 1


def _assemble(files: list[SourceFile], results: dict[str, _FileResult], measure_recall: bool) -> tuple[list[Piece], CorpusReport]:
    pieces: list[Piece] = []
    skipped: list[Skipped] = []
    kept = total = 0
    for f in files:
        result = results[f.name]
        if result.skip is not None:
            skipped.append(Skipped(f.name, result.skip))
            continue
        for suffix, rows, bpm in result.pieces:
            pieces.append(Piece(f.name + suffix, rows, f.name, bpm))
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


# ---- sources ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceFile:
    path: Path  # where to read it
    name: str  # how pieces and reports name it: the path as given, or music21:RELATIVE/PATH


def resolve_sources(sources: Sequence[str]) -> list[SourceFile]:
    """Source strings -> the files they name, each once, in the order given (folders sorted)."""
    if not sources:
        raise ImprovError("no corpus sources given (name MIDI files, folders or music21:NAME)")
    out: list[SourceFile] = []
    seen: set[Path] = set()
    for source in sources:
        for f in _resolve_one(str(source)):
            real = f.path.resolve()
            if real not in seen:
                seen.add(real)
                out.append(f)
    return out


def _resolve_one(source: str) -> list[SourceFile]:
    if source.startswith(MUSIC21_PREFIX):
        return music21_works(source[len(MUSIC21_PREFIX):])
    path = Path(source).expanduser()
    if path.is_file():
        return [SourceFile(path, source)]
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


def _kind(path: Path) -> str:
    """Which reader a file goes to: midi, music21 or analysis (skipped). Unknown -> MIDI."""
    ext = path.suffix.lower()
    if ext in SCORE_EXTENSIONS:
        return "music21"
    if ext in ANALYSIS_EXTENSIONS:
        return "analysis"
    return "midi"


# ---- reading one file (in a worker) --------------------------------------------------------


@dataclass
class _FileResult:
    skip: str | None = None  # why the file gave no piece; None when it did
    pieces: list[tuple[str, np.ndarray, float | None]] = field(default_factory=list)  # (suffix, rows, bpm)
    kept: int | None = None  # round trip: notes kept, of total; None when not measured
    total: int | None = None
    cacheable: bool = True  # timeouts and crashes are not: the next run tries again
    restart: bool = False  # the worker was interrupted mid-parse: replace it (library state may be broken)


def parse_file(path: str, kind: str, data: bytes, tokenizer: Tokenizer, measure_recall: bool) -> _FileResult:
    """One file -> token rows of each piece in it (and round-trip counts); errors become a skip."""
    try:
        works = read_works(path, kind, data)
    except MIDIConversionError as exc:
        return _FileResult(skip=str(exc))
    result = _FileResult(kept=0 if measure_recall else None, total=0 if measure_recall else None)
    for suffix, notes, bpm in works:
        if not notes:
            continue
        rows = tokenizer.encode(notes)
        result.pieces.append((suffix, rows, bpm))
        if measure_recall:
            kept, total = roundtrip_counts(notes, rows, tokenizer)
            result.kept += kept
            result.total += total
    if not result.pieces:
        return _FileResult(skip="no pitched notes (drums and unpitched percussion are left out)")
    return result


def read_works(path: str, kind: str, data: bytes) -> list[tuple[str, list[Note], float | None]]:
    """(suffix, notes, bpm) of each work in a file: one for MIDI and scores, many for an ABC book."""
    if kind == "midi":
        content = read_midi(data)
        return [("", content.notes, content.bpm)]
    return read_music21(path)


def roundtrip_counts(notes: Sequence[Note], rows: np.ndarray, tokenizer: Tokenizer) -> tuple[int, int]:
    """(kept, total): source notes whose (grid onset, pitch) come back from decode -> MIDI -> read.

    The reference is ``Tokenizer.grid_onsets`` (onsets on the grid, from the first note, long gaps
    shortened as ``encode`` shortens them); both sides are compared as multisets.
    """
    reference = collections.Counter(tokenizer.grid_onsets(notes))
    decoded = tokenizer.decode(rows)
    back = read_midi(midi_bytes([Track("roundtrip", decoded)], bpm=120.0)).notes
    survived = collections.Counter(tokenizer.grid_onsets(back))
    return sum((reference & survived).values()), sum(reference.values())


# ---- music21 ---------------------------------------------------------------------------------


def read_music21(path: str) -> list[tuple[str, list[Note], float | None]]:
    """A score file music21 reads -> (suffix, notes, bpm) per work ("#N" for a collection's Nth)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # music21 warns freely about what it guesses; not the user's business here
        try:
            from music21 import converter, stream
        except ImportError:
            raise MIDIConversionError("music21 is not installed: cannot read this score format") from None
        try:
            parsed = converter.parse(path, forceSource=True)  # forceSource: no pickles in music21's scratch folder
        except Exception as exc:  # noqa: BLE001 - music21's parsers raise anything on malformed input
            raise MIDIConversionError(f"music21 cannot read it ({_one_line(exc)})") from None
        if isinstance(parsed, stream.Opus):
            scores = list(parsed.scores)
            width = len(str(len(scores)))
            return [(f"#{i + 1:0{width}d}", *_score_notes(s)) for i, s in enumerate(scores)]
        return [("", *_score_notes(parsed))]


def notes_from_music21(score: Any) -> list[Note]:
    """The notes of a music21 score (or part), as ``read_music21`` reads them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _score_notes(score)[0]


def _score_notes(score: Any) -> tuple[list[Note], float | None]:
    """Every part: ties joined, chords expanded (octaves kept), grace notes and percussion left out.

    Velocities are what music21's own MIDI export writes (``volume.realizeVolume`` per part:
    explicit velocities, dynamics marks, accents); a score without dynamics gets music21's
    default, 90. So a score and music21's MIDI rendering of it read the same.
    """
    from music21 import instrument, tempo

    parts = list(score.parts) if hasattr(score, "parts") and len(score.parts) else [score]
    notes: list[Note] = []
    for part in parts:
        inst = part.getInstrument(returnDefault=False)
        if isinstance(inst, instrument.UnpitchedPercussion):
            continue
        notes.extend(_part_notes(part))
    mark = score.recurse().getElementsByClass(tempo.MetronomeMark).first()
    bpm = mark.getQuarterBPM() if mark is not None else None
    return notes, (round(float(bpm), 3) if bpm else None)


def _part_notes(part: Any) -> list[Note]:
    """One part's notes with tied notes joined (what ``stripTies`` does, in one O(n) pass)."""
    from music21 import chord, note, volume

    flat = part.flatten()
    volume.realizeVolume(flat)
    out: list[list] = []  # [pitch, start, duration, velocity]
    open_ties: dict[int, list] = {}  # pitch -> the note a tie from it is still to reach
    for element in flat.notes:
        if element.duration.isGrace:
            continue  # no time of their own in the score: on the grid they would be false chord tones
        start = float(element.offset)
        length = float(element.quarterLength)
        if isinstance(element, note.Note):
            members = [(element, element)]
        elif isinstance(element, chord.Chord):  # PercussionChord and Unpitched are not Chord/Note
            members = [(n, n if n.hasVolumeInformation() else element) for n in element.notes]
        else:
            continue
        for member, loud in members:
            pitch = member.pitch.midi
            tie = member.tie.type if member.tie is not None else None
            held = open_ties.get(pitch)
            if tie in ("stop", "continue") and held is not None and abs(held[1] + held[2] - start) < 1e-6:
                held[2] += length  # the tied continuation lengthens the note it continues
                if tie == "stop":
                    del open_ties[pitch]
                continue
            new = [pitch, start, length, _velocity(loud.volume.cachedRealized)]
            out.append(new)
            if tie in ("start", "continue"):
                open_ties[pitch] = new
    return [Note(p, s, d, v) for p, s, d, v in out]


def _velocity(realized: float) -> int:
    return min(127, max(1, int(round(realized * 127))))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:160]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ---- worker processes ------------------------------------------------------------------------


@dataclass
class _Job:
    name: str
    path: str
    kind: str


# Wall time a worker gets per file, in multiples of its CPU-time limit: on 2 cores shared by 8
# busy processes a parse takes ~4x its CPU time, and must not be killed for that.
GUARD_FACTOR = 5.0


class _FileTimeout(BaseException):
    """Raised by the alarm inside a worker. A BaseException, so library code catching Exception
    cannot swallow it."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _FileTimeout()


def _worker_main(conn: Any, tokenizer_settings: TokenizerSettings, measure_recall: bool, timeout_s: float) -> None:
    """A parser process: receive (path, kind), answer (cache key, _FileResult), until told to stop.

    The worker reads the file itself, so the parent never holds the corpus's bytes, and keys the
    result by the content it actually parsed.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    use_alarm = hasattr(signal, "setitimer")
    if use_alarm:
        signal.signal(signal.SIGPROF, _on_alarm)
    warnings.simplefilter("ignore")
    sys.stdout = sys.stderr = open(os.devnull, "w")  # a chatty library must not garble the report
    tokenizer = Tokenizer(tokenizer_settings)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        path, kind = task
        key, result = _parse_task(path, kind, tokenizer, measure_recall, timeout_s if use_alarm else 0.0)
        try:
            conn.send((key, result))
        except (OSError, ValueError):
            return
        if result.restart:
            return


def _parse_task(path: str, kind: str, tokenizer: Tokenizer, measure_recall: bool, alarm_s: float) -> tuple[str | None, _FileResult]:
    """(cache key, result) of one file, within ``alarm_s`` seconds of CPU time (0 = no alarm).

    CPU time, not wall time: on a machine busy with other work a big file must not be skipped for
    waiting its turn. A parser stuck without using the CPU is the pool's guard's to stop.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return None, _FileResult(skip=f"cannot read the file: {exc.strerror or exc}", cacheable=False)
    key = _cache_key(data, kind, tokenizer.settings)
    try:
        if alarm_s:
            signal.setitimer(signal.ITIMER_PROF, alarm_s)
        try:
            return key, parse_file(path, kind, data, tokenizer, measure_recall)
        finally:
            if alarm_s:
                signal.setitimer(signal.ITIMER_PROF, 0)
    except _FileTimeout:
        reason = f"took more than {alarm_s:g} s of CPU time to parse (corpus.file_timeout_s)"
        return key, _FileResult(skip=reason, cacheable=False, restart=True)
    except Exception as exc:  # noqa: BLE001 - one bad file must never stop the corpus
        return key, _FileResult(skip=f"reader failed ({_one_line(exc)})")


class _Worker:
    """One parser process and the job it is on."""

    def __init__(self, ctx: Any, args: tuple) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, *args), daemon=True)
        self.process.start()
        child.close()
        self.job: _Job | None = None
        self.deadline = 0.0

    def give(self, job: _Job, limit_s: float) -> None:
        self.job = job
        self.deadline = time.monotonic() + limit_s
        self.conn.send((job.path, job.kind))

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            try:
                self.conn.send(None)
            except (OSError, ValueError):
                self.process.kill()
        self.process.join(timeout=1.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def _context() -> Any:
    # fork starts a worker in milliseconds and the workers only parse files (no threads, no
    # torch); elsewhere the platform's default (spawn) re-imports improv in each worker.
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def _run_jobs(
    jobs: list[_Job],
    tokenizer_settings: TokenizerSettings,
    measure_recall: bool,
    timeout_s: float,
    n_workers: int,
    show_progress: bool,
) -> Iterable[tuple[_Job, str | None, _FileResult]]:
    """Parse every job in ``n_workers`` processes; yield (job, cache key, result) as each finishes.

    Each worker stops its own file after ``timeout_s`` of CPU time (an alarm); one that does not
    answer within ``GUARD_FACTOR`` times that in wall time (stuck inside C code or waiting on
    nothing) or dies is killed and replaced, and its file skipped with the reason.
    """
    ctx = _context()
    args = (tokenizer_settings, measure_recall, timeout_s)
    guard_s = GUARD_FACTOR * timeout_s + 2.0
    pending = collections.deque(jobs)
    workers = [_Worker(ctx, args) for _ in range(n_workers)]
    bar = _progress_bar(len(jobs), show_progress)
    try:
        while pending or any(w.job for w in workers):
            for w in workers:
                if w.job is None and pending:
                    w.give(pending.popleft(), guard_s)
            busy = [w for w in workers if w.job is not None]
            now = time.monotonic()
            wait_s = max(0.0, min(w.deadline for w in busy) - now)
            ready = set(wait_connections([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=wait_s))
            for i, w in enumerate(workers):
                if w.job is None:
                    continue
                if w.conn in ready or w.process.sentinel in ready:
                    key, result = _receive(w)
                elif time.monotonic() >= w.deadline:
                    reason = f"its parser was stuck for {guard_s:g} s and was stopped"
                    key, result = None, _FileResult(skip=reason, cacheable=False, restart=True)
                else:
                    continue
                job, w.job = w.job, None
                if result.restart:  # dead, wedged or interrupted: a fresh worker for the remaining files
                    w.stop(kill=True)
                    workers[i] = _Worker(ctx, args)
                bar.update(1)
                yield job, key, result
    finally:
        bar.close()
        for w in workers:
            w.stop(kill=w.job is not None)


def _receive(worker: _Worker) -> tuple[str | None, _FileResult]:
    """The worker's (cache key, result), or the reason it has none (it died)."""
    try:
        if worker.conn.poll():
            return worker.conn.recv()
    except (EOFError, OSError):
        pass
    worker.process.join(timeout=1.0)
    code = worker.process.exitcode
    how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
    return None, _FileResult(skip=f"its parser process died ({how})", cacheable=False, restart=True)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, show: bool) -> Any:
    if not show:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="file", desc="parsing", file=sys.stderr, leave=False)


# ---- cache -----------------------------------------------------------------------------------

_MAGIC = b"IMPROV-TOKENS\x00"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "improv" / "corpus"


def _open_cache(settings: CorpusSettings) -> tuple[_Cache | None, list[str]]:
    if not settings.cache:
        return None, []
    folder = Path(settings.cache_dir).expanduser() if settings.cache_dir else default_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return None, [f"cache off: cannot create {folder} ({exc.strerror or exc})"]
    return _Cache(folder), []


def _cache_key(data: bytes, kind: str, tokenizer_settings: TokenizerSettings) -> str:
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


class _Cache:
    """One file per source file: magic, header length, JSON header, then the token rows.

    Writes are atomic (a temporary file renamed into place); an entry that does not read back
    exactly (bad magic, header, length or checksum) counts as absent and is rewritten.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.tok"

    def load(self, key: str) -> _FileResult | None:
        try:
            blob = self._path(key).read_bytes()
        except OSError:
            return None
        try:
            return _decode_entry(blob, key)
        except (ValueError, KeyError, TypeError, IndexError):
            return None  # corrupt: parse again and overwrite

    def store(self, key: str, result: _FileResult) -> None:
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


def _encode_entry(result: _FileResult, key: str) -> bytes:
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


def _decode_entry(blob: bytes, key: str) -> _FileResult:
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
    return _FileResult(skip=header["skip"], pieces=pieces, kept=header["kept"], total=header["total"])
