"""The one two-stage Ctrl-C: the first Ctrl-C (or SIGTERM, SIGHUP, SIGQUIT) asks to stop cleanly, a
second Ctrl-C stops at once, except while the last messages or files are being written.

Why SIGHUP and SIGQUIT too: closing the terminal or losing the SSH session sends SIGHUP, and
Ctrl-\\ sends SIGQUIT; by default both kill the process mid-answer, notes left sounding and the
recording lost. Here they end the session as SIGTERM does.

`improv train` stops after the current step and writes its resume file; `improv serve` and the
demo end the session, and every note still sounding gets its note-off. A second Ctrl-C raises
``KeyboardInterrupt`` where the program is, but inside ``shielded()`` it is held back until the
block ends (the final note-offs and All Notes Off always leave, a file being written is finished).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Callable, Iterator

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name))


class StopRequests:
    """Installs handlers for ``STOP_SIGNALS`` (those of SIGINT, SIGTERM, SIGHUP and SIGQUIT the
    platform has) for the ``with`` block (main thread only; elsewhere it only keeps the flag, set
    by ``request``)."""

    def __init__(self, on_first: Callable[[], None] | None = None) -> None:
        self.requested = False
        self.count = 0
        self._on_first = on_first
        self._old: dict[int, Any] = {}
        self._shield = 0
        self._held_back = False

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()

    def request(self) -> None:
        """What the first signal does (also callable from code: another thread, a test)."""
        self.count += 1
        if not self.requested:
            self.requested = True
            if self._on_first is not None:
                self._on_first()

    def _handle(self, signum: int, frame: Any) -> None:
        again = self.requested
        self.request()
        if again and signum == signal.SIGINT:
            if self._shield:
                self._held_back = True  # raised when the shielded block ends... or never, if it ends the program
                return
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """A block a second Ctrl-C must not cut short (final messages, a file being written)."""
        self._shield += 1
        try:
            yield
        finally:
            self._shield -= 1
        if not self._shield and self._held_back:
            self._held_back = False
            raise KeyboardInterrupt
