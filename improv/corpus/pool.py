"""Parser worker processes: every file parsed in a pool, each within limits of time and memory.

Files are parsed in worker processes, one file at a time each (a worker reads the file itself, so
the parent never holds the corpus's bytes). A file that fails, times out, runs out of memory or
kills its worker is skipped with its reason and the rest goes on:

* each worker stops its own file after ``corpus.file_timeout_s`` of *CPU* time (an alarm), so a big
  file on a machine busy with other work is not skipped for waiting its turn;
* each worker may allocate ``corpus.worker_memory_mb`` beyond what it started with (a data-segment
  limit: a zip bomb of a score fails with MemoryError instead of eating the machine);
* only regular files up to ``corpus.max_file_mb`` are read (a FIFO or ``/dev/zero`` named
  ``.mid`` is refused, never read);
* a worker that does not answer within ``GUARD_FACTOR`` times its time limit in *wall* time
  while using no CPU (waiting on nothing), or that uses more CPU than its limit (stuck in C code,
  where the alarm cannot reach it), or dies, is killed and replaced. One still using the CPU gets
  another such span: on a loaded machine a parse that waits its turn is slow, not stuck (at load
  20 on 2 cores files were skipped this way, and which pieces a benchmark played changed with the
  machine's load).
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_connections
from typing import Any, Iterable

from improv.corpus.cache import cache_key
from improv.corpus.reader import FileResult, read_file, tokenize
from improv.errors import one_line
from improv.io.files import FileProblem, read_regular_file
from improv.music.tokenizer import Tokenizer
from improv.settings.sections import TokenizerSettings


@dataclass
class Job:
    name: str
    path: str
    kind: str


@dataclass(frozen=True)
class Limits:
    """What one file may cost a worker."""

    cpu_s: float  # CPU seconds (corpus.file_timeout_s)
    file_bytes: int  # size of the file (corpus.max_file_mb)
    memory_bytes: int  # memory allocated beyond the worker's start (corpus.worker_memory_mb); 0 = no limit


# Wall time a worker gets per file, in multiples of its CPU-time limit, before the guard looks at
# it: on 2 cores shared by 8 busy processes a parse takes ~4x its CPU time.
GUARD_FACTOR = 5.0
PROGRESS_S = 0.05  # CPU seconds a worker must have used since the guard last looked to get another span
ALARM_SLACK_S = 2.0  # CPU seconds past the limit after which the alarm is taken to have been missed (C code)


def _cpu_seconds(pid: int | None) -> float | None:
    """A process's CPU time so far (user + system), or None where /proc cannot tell (not Linux)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after the command's name, which may hold spaces
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class _FileTimeout(BaseException):
    """Raised by the alarm inside a worker. A BaseException, so library code catching Exception
    cannot swallow it."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _FileTimeout()


def _limit_memory(extra_bytes: int) -> None:
    """Cap this process's data segment at what it uses now plus ``extra_bytes`` (Linux; elsewhere
    a no-op). RLIMIT_DATA counts heap and private mappings, not the shared libraries a parent
    with torch loaded has mapped, so the allowance means the same in every parent."""
    try:
        import resource

        with open("/proc/self/status") as status:
            used_kb = next(int(line.split()[1]) for line in status if line.startswith("VmData:"))
        limit = used_kb * 1024 + extra_bytes
        resource.setrlimit(resource.RLIMIT_DATA, (limit, resource.getrlimit(resource.RLIMIT_DATA)[1]))
    except (ImportError, OSError, StopIteration, ValueError):
        pass


def _worker_main(conn: Any, tokenizer_settings: TokenizerSettings, measure_recall: bool, limits: Limits) -> None:
    """A parser process: receive (path, kind), answer (cache key, FileResult), until told to stop.

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
    if limits.memory_bytes:
        _limit_memory(limits.memory_bytes)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        path, kind = task
        key, result = parse_task(path, kind, tokenizer, measure_recall, limits, use_alarm)
        try:
            conn.send((key, result))
        except (OSError, ValueError):
            return
        if result.restart:
            return


def parse_task(path: str, kind: str, tokenizer: Tokenizer, measure_recall: bool, limits: Limits, use_alarm: bool = False) -> tuple[str | None, FileResult]:
    """(cache key, result) of one file: read within the limits, then tokenized.

    CPU time, not wall time: on a machine busy with other work a big file must not be skipped for
    waiting its turn. A parser stuck without using the CPU is the pool's guard's to stop.
    """
    try:
        data = read_regular_file(path, limits.file_bytes)
    except FileProblem as exc:
        return None, FileResult(skip=f"{exc} (corpus.max_file_mb)" if str(exc).startswith("too big") else str(exc), cacheable=False)
    key = cache_key(data, kind)
    alarm_s = limits.cpu_s if use_alarm else 0.0
    try:
        if alarm_s:
            signal.setitimer(signal.ITIMER_PROF, alarm_s)
        try:
            result = read_file(path, kind, data)
            if result.skip is None:
                result.tokens = tokenize(result.works, tokenizer, measure_recall)
            return key, result
        finally:
            if alarm_s:
                signal.setitimer(signal.ITIMER_PROF, 0)
    except _FileTimeout:
        reason = f"took more than {alarm_s:g} s of CPU time to parse (corpus.file_timeout_s)"
        return key, FileResult(skip=reason, cacheable=False, restart=True)
    except MemoryError:
        reason = f"needed more than {limits.memory_bytes / 2**20:g} MB of memory to parse (corpus.worker_memory_mb)"
        return key, FileResult(skip=reason, cacheable=False, restart=True)
    except RecursionError:
        return key, FileResult(skip="nested too deeply to parse", restart=True)
    except Exception as exc:  # noqa: BLE001 - one bad file must never stop the corpus
        return key, FileResult(skip=f"reader failed ({one_line(exc)})")


class _Worker:
    """One parser process and the job it is on."""

    def __init__(self, ctx: Any, args: tuple) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, *args), daemon=True)
        self.process.start()
        child.close()
        self.job: Job | None = None
        self.deadline = 0.0
        self._cpu_start: float | None = None  # the worker's CPU time when it got the job
        self._cpu_seen: float | None = None  # ... and when the guard last looked

    def give(self, job: Job, limit_s: float) -> None:
        self.job = job
        self.deadline = time.monotonic() + limit_s
        self._cpu_start = self._cpu_seen = _cpu_seconds(self.process.pid)
        self.conn.send((job.path, job.kind))

    def still_working(self, limit_s: float, cpu_limit_s: float) -> bool:
        """At its deadline: whether the worker is still parsing (it used CPU since the guard last
        looked, and no more in all than the alarm allows); if so it gets ``limit_s`` more."""
        cpu = _cpu_seconds(self.process.pid)
        if cpu is None or self._cpu_seen is None or self._cpu_start is None:
            return False
        working = cpu - self._cpu_seen >= PROGRESS_S and cpu - self._cpu_start <= cpu_limit_s + ALARM_SLACK_S
        self._cpu_seen = cpu
        if working:
            self.deadline = time.monotonic() + limit_s
        return working

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


def run_jobs(
    jobs: list[Job],
    tokenizer_settings: TokenizerSettings,
    measure_recall: bool,
    limits: Limits,
    n_workers: int,
    show_progress: bool,
) -> Iterable[tuple[Job, str | None, FileResult]]:
    """Parse every job in ``n_workers`` processes; yield (job, cache key, result) as each finishes.

    Each worker stops its own file after ``limits.cpu_s`` of CPU time (an alarm); one that does
    not answer within ``GUARD_FACTOR`` times that in wall time without using the CPU meanwhile
    (waiting on nothing), or past its CPU limit (stuck inside C code), or dies, is killed and
    replaced, and its file skipped with the reason.
    """
    ctx = _context()
    args = (tokenizer_settings, measure_recall, limits)
    guard_s = GUARD_FACTOR * limits.cpu_s + 2.0
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
                elif time.monotonic() >= w.deadline and not w.still_working(guard_s, limits.cpu_s):
                    reason = f"its parser was stuck for {guard_s:g} s and was stopped"
                    key, result = None, FileResult(skip=reason, cacheable=False, restart=True)
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


def _receive(worker: _Worker) -> tuple[str | None, FileResult]:
    """The worker's (cache key, result), or the reason it has none (it died)."""
    try:
        if worker.conn.poll():
            return worker.conn.recv()
    except (EOFError, OSError):
        pass
    worker.process.join(timeout=1.0)
    code = worker.process.exitcode
    how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
    return None, FileResult(skip=f"its parser process died ({how})", cacheable=False, restart=True)


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
