"""Ableton Link for `improv serve --link`: the one module that imports the Link library.

LinkPython-extern (``pip install -e ".[link]"``; the import is ``link``) wraps Ableton's Link:
peers on the local network share a tempo and a beat timeline. This shell keeps a
``LinkView`` of the session up to date on a thread of its own, with times
on the serve loop's clock (``time.perf_counter``), and commits the engine's lead requests there.
The serve loop only reads the latest view (an attribute) and appends a request to a one-slot
deque: it never calls the library, so nothing on the send path can wait on Link's locks.

Why a thread rather than calls from the loop: capturing Link's session state takes a lock Link's
network thread holds while it works; a view refreshed every ``PERIOD_S`` is exact between tempo
changes (the grid is extrapolated), and a peer's tempo change is seen within that period.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from improv.errors import ImprovError

PERIOD_S = 0.01
MAX_READ_S = 0.0002  # a clock pair read over longer than this (the thread was preempted) is not used
INSTALL = 'pip install -e ".[link]"  (or: pip install LinkPython-extern)'


@dataclass(frozen=True)
class LinkView:
    """The session as the shell last saw it, with times on the loop's clock."""

    at: float  # when it was taken
    bpm: float
    downbeat: float  # the time of a beat at the session's phase 0 (a bar line)
    quantum: int  # beats per bar of that phase
    peers: int  # other peers in the session
    playing: bool = False  # the session's transport (start/stop sync)


class LinkUnavailable(ImprovError):
    pass


def load_link() -> Any:
    """The Link library's module, or a one-line error with the install command."""
    try:
        import link as ableton_link  # LinkPython-extern
    except ImportError:
        raise LinkUnavailable(f"serve --link needs Ableton Link for Python: {INSTALL}") from None
    if not hasattr(ableton_link, "Link"):
        raise LinkUnavailable(f"the module 'link' found is not LinkPython-extern: {INSTALL}")
    return ableton_link


class LinkSession:
    """A peer in the Link session on this network; see the module docstring. ``now``: the loop's
    clock. ``close()`` leaves the session."""

    def __init__(self, bpm: float, quantum: int, now: Callable[[], float] = time.perf_counter, period_s: float = PERIOD_S) -> None:
        lib = load_link()
        self.quantum = quantum
        self._now = now
        self._period_s = period_s
        self._link = lib.Link(float(bpm))
        self._link.startStopSyncEnabled = True  # the session's transport is shown (not followed: see README)
        self._offset: float | None = None  # loop clock minus Link's clock, seconds
        self._view: LinkView | None = None
        self._requests: deque[tuple[float, float]] = deque(maxlen=1)  # the loop's latest lead (append/pop are atomic)
        self._stop = threading.Event()
        self._link.enabled = True
        self._refresh()  # a first view before the loop starts
        self._thread = threading.Thread(target=self._run, name="improv-link", daemon=True)
        self._thread.start()

    # ---- the loop's side: never blocks -----------------------------------------------------------

    def view(self) -> LinkView | None:
        return self._view

    def lead(self, bpm: float, downbeat: float) -> None:
        self._requests.append((bpm, downbeat))

    # ---- the thread's side ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            try:
                if self._requests:
                    self._commit(*self._requests.popleft())
                self._refresh()
            except Exception:  # a library error must not end the thread: the view goes stale, the engine stops following
                time.sleep(0.5)

    def _clock_pair(self) -> tuple[float, int]:
        """(loop time, Link micros) read together; the offset between the two clocks updated."""
        micros = self._link.clock().micros
        for _ in range(5):
            t0 = self._now()
            m = micros()
            t1 = self._now()
            if t1 - t0 <= MAX_READ_S or self._offset is None:
                self._offset = (t0 + t1) / 2 - m / 1e6
                return (t0 + t1) / 2, m
        return self._now(), micros()

    def _to_loop(self, micros: float) -> float:
        assert self._offset is not None
        return micros / 1e6 + self._offset

    def _refresh(self) -> None:
        t, m = self._clock_pair()
        q = float(self.quantum)
        state = self._link.captureAppSessionState()
        beat = state.beatAtTime(m, q)
        bar = beat - state.phaseAtTime(m, q)
        downbeat = self._to_loop(state.timeAtBeat(bar, q))
        self._view = LinkView(t, state.tempo(), downbeat, self.quantum, self._link.numPeers(), state.isPlaying())

    def _commit(self, bpm: float, downbeat: float) -> None:
        """The engine's lead: the tempo from now, and beat 0 of a bar at ``downbeat`` (exactly
        there alone; with peers Link keeps the session's phase and only the tempo changes)."""
        _, m = self._clock_pair()
        assert self._offset is not None
        at = int(round((downbeat - self._offset) * 1e6))
        state = self._link.captureAppSessionState()
        state.setTempo(float(bpm), m)
        state.requestBeatAtTime(0.0, at, float(self.quantum))
        self._link.commitAppSessionState(state)

    def close(self) -> None:
        """Leave the session (the thread stops first: no call into a disabled Link)."""
        self._stop.set()
        self._thread.join(timeout=1.0)
        self._link.enabled = False
