"""The hand-off between the serve loop's thread and the monitor's web threads.

The loop must never wait for the page. So the loop side only appends to bounded deques (an
append is atomic and takes no lock a web thread could hold; when the page falls behind, the
oldest events are dropped, never the loop slowed), and the web side keeps everything else: the
numbered log clients read from, behind a lock only web threads take (``Hub``).

Events are small dicts, ready for JSON: ``note`` (who, channel, pitch, velocity, t; velocity 0 is
a release), ``status`` (an exchange's status line, or another line the session said), ``state``
(what improv hears and does now: ``taps.snapshot``). Times are on the session clock's scale.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, Callable, Iterator

EVENTS_MAX = 8192  # events the loop may be ahead of the page before the oldest are dropped
HISTORY_MAX = 6000  # events kept for a page that connects (or reconnects) later
LINES_MAX = 200  # status lines kept for it


class Feed:
    """Loop -> web: ``post`` (loop thread). Web -> loop: ``send`` (web threads) queues a MIDI
    message the loop's input hands to the engine with the performer's, and wakes the loop."""

    def __init__(self) -> None:
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENTS_MAX)
        self.inbox: deque[Any] = deque(maxlen=64)
        self.wake: threading.Event | None = None  # the loop's, set when it is attached

    def post(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def send(self, msg: Any) -> None:
        self.inbox.append(msg)
        if self.wake is not None:
            self.wake.set()  # as a real input's callback does: the loop takes it at once

    def take_inbox(self) -> Iterator[Any]:
        while self.inbox:
            try:
                yield self.inbox.popleft()
            except IndexError:  # emptied meanwhile: nothing left
                return


class Hub:
    """The web side: numbered events (``since``), the latest state, the static facts of the session
    (``info``: voices, the controls there are), and a flag that ends every stream (``close``)."""

    def __init__(self, feed: Feed, now: Callable[[], float], seconds: float) -> None:
        self.feed = feed
        self.now = now
        self.seconds = seconds
        self.info: dict[str, Any] = {}
        self.state: dict[str, Any] = {}
        self.closed = threading.Event()
        self._lock = threading.Lock()  # web threads only: the loop never takes it
        self._log: deque[tuple[int, dict[str, Any]]] = deque(maxlen=HISTORY_MAX)
        self._lines: deque[tuple[int, dict[str, Any]]] = deque(maxlen=LINES_MAX)
        self._seq = 0
        self._state_seq = 0

    def pull(self) -> None:
        """Move what the loop posted into the numbered log."""
        with self._lock:
            events = self.feed.events
            while events:
                try:
                    event = events.popleft()
                except IndexError:
                    break
                self._seq += 1
                if event["type"] == "state":
                    self.state, self._state_seq = event, self._seq
                elif event["type"] == "status":
                    self._lines.append((self._seq, event))
                else:
                    self._log.append((self._seq, event))

    def since(self, cursor: int) -> tuple[int, list[dict[str, Any]]]:
        """Events after ``cursor`` (0: a new page: the notes of the last ``seconds``, the status
        lines, the state), and the new cursor."""
        self.pull()
        with self._lock:
            if cursor == 0:
                oldest = self.now() - self.seconds - 5
                picked = [(s, e) for s, e in self._log if e["t"] >= oldest]
                picked += list(self._lines)
            else:
                picked = _after(self._log, cursor) + _after(self._lines, cursor)
            picked.sort(key=lambda item: item[0])
            events = [e for _, e in picked]
            if self.state and (cursor == 0 or self._state_seq > cursor):
                events.append(self.state)
            return self._seq, events

    def close(self) -> None:
        self.closed.set()


def _after(log: deque[tuple[int, dict[str, Any]]], cursor: int) -> list[tuple[int, dict[str, Any]]]:
    """The entries numbered after ``cursor``, read from the newest end (numbers only grow): a
    page polling every 50 ms costs what is new, not the whole history, under the GIL the loop needs."""
    new = []
    for seq, event in reversed(log):
        if seq <= cursor:
            break
        new.append((seq, event))
    new.reverse()
    return new
