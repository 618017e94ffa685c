"""Status lines leave the loop's thread through a bounded queue, and a thread of their own writes them.

Why: a write to the terminal can block for as long as the terminal wants: Ctrl-S, a stalled SSH
session, a pipe nobody reads. Written on the loop's thread, that held an answer's last note 2 s
instead of 1.2 s. Here the loop only appends to a bounded deque (atomic, no lock the printer can
hold) and sets an event; when the queue is full the line is dropped and counted, and the printer
says how many were dropped once it can write again. A terminal that is gone (OSError: closed
after SIGHUP) only drops lines.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable

CAPACITY = 256  # lines waiting for the printer; more are dropped (counted)


class StatusPrinter:
    """``printer(line)`` never blocks (any thread); ``say`` runs on the printer's own thread,
    started at the first line. ``close`` writes what is queued (waiting at most ``timeout_s``)."""

    def __init__(self, say: Callable[[str], None], capacity: int = CAPACITY) -> None:
        self.say = say
        self.capacity = capacity
        self.dropped = 0  # lines dropped, in all
        self.failures = 0  # lines ``say`` raised on
        self.first_failure: str | None = None
        self._queue: deque[str] = deque()
        self._ready = threading.Event()
        self._closing = False
        self._unsaid = 0  # dropped since the printer last said so
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def __call__(self, line: str) -> None:
        if self._closing and (self._thread is None or not self._thread.is_alive()):
            self._write(line)  # the session is over: no loop left to protect
            return
        if len(self._queue) >= self.capacity:
            self.dropped += 1
            self._unsaid += 1
            return
        self._queue.append(line)
        if self._thread is None:
            self._start()
        self._ready.set()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._closing:
                self._thread = threading.Thread(target=self._run, name="improv-status", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._ready.wait()
            self._ready.clear()
            while self._queue:
                self._write(self._queue.popleft())
                if self._unsaid:
                    count, self._unsaid = self._unsaid, 0
                    self._write(f"improv: {count} status line{'s' if count != 1 else ''} dropped: the terminal was not reading")
            if self._closing:
                return

    def _write(self, line: str) -> None:
        try:
            self.say(line)
        except Exception as exc:  # a terminal that is gone, a broken callback: the line is lost, the session is not
            self.failures += 1
            if self.first_failure is None:
                self.first_failure = f"{type(exc).__name__}: {exc}"

    def close(self, timeout_s: float = 1.0) -> None:
        """Write what is queued, then end the thread (a blocked terminal: give up after ``timeout_s``)."""
        self._closing = True
        thread = self._thread
        if thread is None:
            self._run_rest()
            return
        self._ready.set()
        thread.join(timeout_s)
        if not thread.is_alive():
            self._run_rest()  # a line queued as the thread ended

    def _run_rest(self) -> None:
        while self._queue:
            self._write(self._queue.popleft())
