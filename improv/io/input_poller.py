"""An rtmidi input drained by a Python thread of improv's own, never called back on JACK's thread.

Why: rtmidi's JACK input calls a set callback on JACK's real-time process thread, and
python-rtmidi's callback takes the GIL there. While the serve loop holds the GIL (spinning to a
send, a model step) JACK's thread waits for it, up to a GIL switch interval: at a period of 64
frames (1.3 ms) that cycle is an xrun, and the MIDI of an xrun cycle can be lost. With no callback
set, rtmidi queues each message in its own lock-free queue on that thread and returns at once;
this poller drains it every ``every_s`` (GIL on its own, ordinary thread) into the input's
``ArrivalQueue``, which wakes the loop.

Stamps: rtmidi gives each message its delta time from the one before (on JACK, JACK's clock when
its cycle took it). The newest message of a poll is stamped the last stamp given plus the deltas
since (so the poll's own delay is not added), where that falls after the previous poll and before
this one; otherwise when the poll took it (at most one poll interval, plus a GIL wait, late). The
earlier messages of the poll are stamped back from it by their deltas: a chord or a fast run keeps
its spacing.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from improv.io.arrivals import ArrivalQueue

THREAD_NAME = "improv-midi-poll"
POLL_S = 0.001  # the input's added latency at most; ~1000 short wake-ups a second, under 1 % of a core
CHAIN_SLACK_S = 0.002  # how far before the last poll a chained stamp may fall (else the poll's own time)


class InputPoller:
    """Drains one rtmidi MidiIn (``attach``; ``detach`` before it is reopened; ``close`` when it is
    closed or abandoned: the thread lives as long as a client is attached)."""

    def __init__(self, arrivals: ArrivalQueue, every_s: float = POLL_S, stamp: Callable[[], float] = time.perf_counter, priority: int = 0) -> None:
        self.arrivals = arrivals
        # The SCHED_FIFO priority this poller's thread takes (0: normal scheduling); a live session
        # sets it to its loop's while it runs (``session.process.serve``). Why: a poller takes the
        # GIL a thousand times a second, and a normal thread preempted while holding it keeps the
        # real-time loop waiting (a priority inversion). The thread applies it to itself at its
        # next poll, so one started after a JACK restart does too.
        self.priority = priority
        self.every_s = every_s
        self._stamp = stamp
        self._rt: Any = None
        self._anchor: float | None = None  # the newest message's stamp so far (rtmidi's deltas chain from it)
        self._polled = float("-inf")  # when the last poll found rtmidi's queue empty
        self._lock = threading.Lock()  # the poll vs. close/reopen on another thread
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def attach(self, rt: Any) -> None:
        with self._lock:
            self._rt = rt
        if self._thread is None:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(self._stop,), name=THREAD_NAME, daemon=True)
            self._thread.start()

    def detach(self) -> None:
        """No more polls of the client (the caller closes, reopens or abandons it next)."""
        with self._lock:
            self._rt = None

    def poll(self) -> int:
        """Take what rtmidi queued; how many messages came."""
        with self._lock:
            if self._rt is None:
                return 0
            batch = []
            while (got := self._rt.get_message()) is not None:
                batch.append(got)
        if not batch:
            self._polled = self._stamp()
            return 0
        now = self._stamp()
        t = now
        if self._anchor is not None:  # the newest by rtmidi's clock, from the last message stamped before
            chained = self._anchor + sum(max(0.0, float(delta or 0.0)) for _, delta in batch)
            if self._polled - CHAIN_SLACK_S <= chained < now:  # it came after the last poll: trusted
                t = chained
        self._anchor, self._polled = t, now
        stamped = []
        for data, delta in reversed(batch):  # newest first: each is its successor's time less the successor's delta
            stamped.append((t, data))
            t -= max(0.0, float(delta or 0.0))
        for t, data in reversed(stamped):
            self.arrivals.put(data, t)
        return len(batch)

    def _run(self, stop: threading.Event) -> None:
        applied = 0
        while not stop.wait(self.every_s):
            if self.priority != applied:
                applied = self.priority
                _schedule(applied)
            self.poll()

    def close(self) -> None:
        self.detach()
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
        self._thread = None


def _schedule(priority: int) -> None:
    """This thread at SCHED_FIFO ``priority``, or normal scheduling at 0; silently as it was where
    the system refuses (the loop's own line says what it got)."""
    import os

    try:
        if priority > 0:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        else:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (AttributeError, OSError):
        pass
