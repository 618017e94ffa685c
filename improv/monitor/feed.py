"""The hand-off between the serve loop's thread and the monitor's web threads.

The loop must never wait for the page. So the loop side only appends to bounded deques (an
append is atomic and takes no lock a web thread could hold; when the page falls behind, the
oldest events are dropped, never the loop slowed), and the web side keeps everything else: the
numbered log clients read from, behind a lock only web threads take (``Hub``).

Each event is serialised once, when the web side first takes it (``pull``), and every page gets
that same text; the history a new page gets is joined once and kept for a moment (``start``), so
pages that connect again and again (a flood) cost a copy of bytes, not a walk through 6,000
events holding the GIL the loop needs.

Events are small dicts, ready for JSON: ``note`` (who, channel, pitch, velocity, t; velocity 0 is
a release), ``status`` (an exchange's status line, or another line the session said), ``state``
(what improv hears and does now: ``taps.snapshot``). Times are on the session clock's scale.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Any, Callable, Iterator

EVENTS_MAX = 8192  # events the loop may be ahead of the page before the oldest are dropped
HISTORY_MAX = 6000  # events kept for a page that connects (or reconnects) later
LINES_MAX = 200  # status lines kept for it
HISTORY_KEEP_S = 10.0  # the history a new page gets is gathered afresh at most this often (what came since is added)

to_json = json.JSONEncoder(separators=(",", ":")).encode


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
            self.wake.set()  # as a real input's poller does: the loop takes it at once

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
        self._log: deque[tuple[int, float, str]] = deque(maxlen=HISTORY_MAX)  # (number, time, JSON)
        self._lines: deque[tuple[int, float, str]] = deque(maxlen=LINES_MAX)
        self._state_text = ""
        self._seq = 0
        self._state_seq = 0
        self._history: tuple[int, float, bytes] | None = None  # (as of number, when, joined): see ``start``

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
                text = to_json(event)  # once: every page gets this text
                if event["type"] == "state":
                    self.state, self._state_text, self._state_seq = event, text, self._seq
                elif event["type"] == "status":
                    self._lines.append((self._seq, event["t"], text))
                else:
                    self._log.append((self._seq, event["t"], text))

    def since(self, cursor: int) -> tuple[int, list[str]]:
        """The events after ``cursor`` (a page's last), as JSON texts, and the new cursor."""
        self.pull()
        with self._lock:
            picked = _after(self._log, cursor) + _after(self._lines, cursor)
            picked.sort(key=lambda item: item[0])
            texts = [text for _, _, text in picked]
            if self.state and self._state_seq > cursor:
                texts.append(self._state_text)
            return self._seq, texts

    def start(self) -> tuple[int, bytes]:
        """What a new page gets first, as the inside of a JSON array (the notes of the last
        ``seconds``, the status lines, the state), and its cursor. The history part is joined and
        encoded once and reused for ``HISTORY_KEEP_S``, with what came since added: a page that
        connects costs a copy of bytes, however many connect."""
        self.pull()
        with self._lock:
            wall = time.monotonic()
            kept = self._history
            if kept is None or wall - kept[1] >= HISTORY_KEEP_S:
                oldest = self.now() - self.seconds - 5
                picked = [item for item in self._log if item[1] >= oldest] + list(self._lines)
                picked.sort(key=lambda item: item[0])
                kept = self._history = (self._seq, wall, ",".join(text for _, _, text in picked).encode())
            newer = _after(self._log, kept[0]) + _after(self._lines, kept[0])
            newer.sort(key=lambda item: item[0])
            parts = ([kept[2]] if kept[2] else []) + [text.encode() for _, _, text in newer]
            if self.state:
                parts.append(self._state_text.encode())
            return self._seq, b",".join(parts)

    def close(self) -> None:
        self.closed.set()


def _after(log: deque[tuple[int, float, str]], cursor: int) -> list[tuple[int, float, str]]:
    """The entries numbered after ``cursor``, read from the newest end (numbers only grow): a
    page polling every 50 ms costs what is new, not the whole history, under the GIL the loop needs."""
    new = []
    for item in reversed(log):
        if item[0] <= cursor:
            break
        new.append(item)
    new.reverse()
    return new
