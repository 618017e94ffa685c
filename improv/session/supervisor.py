"""The ports watched from a thread of their own, never from the loop's.

Why: listing the MIDI ports, reopening a replugged keyboard and rebuilding every client after
jackd restarted are calls into the MIDI system that may take milliseconds (or, with a server
going away, much longer). Made on the loop's thread they delayed the sends. Here a supervisor
thread calls ``ports.check()`` every ``every_s`` and queues what it found; the loop takes the
events at its next turn (``take``: a deque drained, nothing more) and acts on them on its own
thread (keys released, the output silenced again): the engine is only ever touched by the loop.

An output being reopened refuses sends instead of making the loop wait (``RtOutput.send``): the
loop counts them as lost and makes up for them when the output is back (``session.outage``).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

Event = tuple[str, str]  # (kind, line): see ``watched_ports.MidiPorts.check``


class PortSupervisor:
    """``ports.check()`` every ``every_s`` on its own thread; ``wake`` is set when it found something."""

    def __init__(self, ports: Any, every_s: float, wake: threading.Event | None = None) -> None:
        self.ports = ports
        self.every_s = every_s
        self.wake = wake
        self._events: deque[Event] = deque(maxlen=256)  # far more than a check ever finds
        self._stop = threading.Event()
        self._said: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="improv-ports", daemon=True)

    def start(self) -> "PortSupervisor":
        self._thread.start()
        return self

    def take(self, now: float) -> list[Event]:
        """What the checks found since the last call (the loop's thread)."""
        out = []
        while self._events:
            out.append(self._events.popleft())
        return out

    def next_check(self) -> float | None:
        return None  # the thread keeps its own time: the loop need not wake for it

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                events = self.ports.check()
            except Exception as exc:  # a bug in a check must not end the watching: say it once, look again
                line = f"watching the MIDI ports failed ({type(exc).__name__}: {exc}); still watching"
                events = [] if line in self._said else [("fault", line)]
                self._said.add(line)
            if events:
                self._events.extend(events)
                if self.wake is not None:
                    self.wake.set()

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop watching (a check in the middle of a call into a dying MIDI system: not waited for
        beyond ``timeout_s``)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
