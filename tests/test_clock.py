"""The clocks: the fake one jumps (to alarms first), the real one reaches its target or wakes early."""

from __future__ import annotations

import threading
import time

from improv.io.clock import FakeClock, RealClock


def test_fake_clock_jumps_and_stops_at_alarms():
    c = FakeClock(1.0)
    assert c.now() == 1.0
    assert c.sleep_until(3.0) is False and c.now() == 3.0
    c.sleep_until(2.0)  # never backwards
    assert c.now() == 3.0
    c.alarm(3.5)
    assert c.sleep_until(5.0) is True and c.now() == 3.5  # an arrival interrupts the sleep
    assert c.sleep_until(5.0) is False and c.now() == 5.0
    c.advance(0.25)
    assert c.now() == 5.25


def test_real_clock_reaches_the_target():
    c = RealClock(spin_s=0.001)
    target = c.now() + 0.01
    assert c.sleep_until(target) is False
    assert time.perf_counter() >= target  # never early (how late is a benchmark's business)


def test_real_clock_wakes_early_on_the_event():
    c = RealClock()
    wake = threading.Event()
    threading.Timer(0.01, wake.set).start()
    started = c.now()
    assert c.sleep_until(started + 30.0, wake) is True
    assert c.now() - started < 29.0
    wake.set()
    assert c.sleep_until(c.now() + 30.0, wake) is True  # already set: at once
