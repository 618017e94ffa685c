"""The clock the serve loop runs on: real (sleep, then spin) or fake (tests, simulated time).

Why a protocol: the engine never reads a clock (it is given ``now``), and the loop reads it only
through this object, so a test or ``improv demo --fast`` swaps in ``FakeClock`` and runs a whole
session instantly and deterministically.

Times are seconds as floats on the clock's own scale (``time.perf_counter`` for the real clock).
"""

from __future__ import annotations

import heapq
import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Current time in seconds."""
        ...

    def sleep_until(self, t: float, wake: threading.Event | None = None) -> bool:
        """Block until ``t`` or until ``wake`` is set; True if woken early by ``wake``."""
        ...


class RealClock:
    """``perf_counter`` time; sleeps until shortly before the target, then spins to it.

    Why spin: ``time.sleep`` and ``Event.wait`` overshoot by 0.05-1 ms (more on a loaded machine);
    spinning the last ``spin_s`` on ``perf_counter`` lands within microseconds of the target at
    the cost of that much CPU per scheduled message.
    """

    def __init__(self, spin_s: float = 0.0015) -> None:
        self.spin_s = spin_s

    def now(self) -> float:
        return time.perf_counter()

    def sleep_until(self, t: float, wake: threading.Event | None = None) -> bool:
        remaining = t - time.perf_counter()
        if remaining > self.spin_s:
            if wake is not None:
                if wake.wait(remaining - self.spin_s):
                    return True
            else:
                time.sleep(remaining - self.spin_s)
        while time.perf_counter() < t:
            if wake is not None and wake.is_set():
                return True
        return False


class FakeClock:
    """Simulated time: sleeping jumps the clock forward, to the target or the next alarm.

    ``alarm(t)`` registers a time the sleeper must not jump past (a scripted input message
    arriving then), so a test feeding messages at exact times sees them at exactly those times.
    """

    def __init__(self, start: float = 0.0, max_stalls: int = 100_000) -> None:
        self.t = float(start)
        self._alarms: list[float] = []
        self._stalls = 0
        self.max_stalls = max_stalls  # sleeps in a row that do not move time: a loop that spins forever

    def now(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt

    def alarm(self, t: float) -> None:
        heapq.heappush(self._alarms, float(t))

    def sleep_until(self, t: float, wake: threading.Event | None = None) -> bool:
        before = self.t
        try:
            if wake is not None and wake.is_set():
                return True
            while self._alarms and self._alarms[0] <= self.t:
                heapq.heappop(self._alarms)
            if self._alarms and self._alarms[0] < t:
                self.t = heapq.heappop(self._alarms)
                return True
            self.t = max(self.t, t)
            return False
        finally:
            self._stalls = self._stalls + 1 if self.t == before else 0
            if self._stalls > self.max_stalls:
                raise RuntimeError(f"simulated time stands still at {self.t}: the caller loops without progress")
