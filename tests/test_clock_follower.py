"""The MIDI clock follower against what is not a clock: a burst of clock bytes must not become the
session's tempo (it was held at "400 bpm (clock, held)" for the rest of the session)."""

from __future__ import annotations

import mido
import numpy as np
import pytest
from support.fakes import LadderModel, phrase, simulate

from improv.realtime.clock_follower import ClockFollower
from improv.realtime.engine import Engine
from improv.settings.serve_section import ServeSettings


def ticks(clock: ClockFollower, times) -> None:
    for t in times:
        clock.tick(float(t))


def test_a_burst_of_clock_bytes_is_no_tempo():
    clock = ClockFollower()
    ticks(clock, 5.0 + np.arange(200) * 1e-5)  # 200 pulses in 2 ms: "30,000 bpm"
    assert clock.bpm is None and not clock.active(5.01)


def test_a_burst_inside_a_running_clock_keeps_its_tempo():
    clock = ClockFollower()
    steady = np.arange(96) * 60 / (120 * 24)
    ticks(clock, steady)
    assert clock.bpm == pytest.approx(120) and clock.active(steady[-1])
    burst_at = steady[-1] + 0.001
    ticks(clock, burst_at + np.arange(30) * 1e-5)
    assert clock.bpm == pytest.approx(120, rel=0.03)  # its first pulse or two nudge the fit; the rest is refused
    assert not clock.active(burst_at + 0.31)  # and it is not a running clock
    ticks(clock, burst_at + 0.01 + np.arange(1, 80) * 60 / (90 * 24))  # a real clock again, at 90
    assert clock.bpm == pytest.approx(90)


def test_jitter_a_busy_machine_gives_is_still_a_clock():
    rng = np.random.default_rng(1)
    clock = ClockFollower()
    period = 60 / (100 * 24)
    ticks(clock, np.arange(200) * period + rng.uniform(-0.3, 0.3, 200) * period)
    assert clock.bpm == pytest.approx(100, rel=0.02)


@pytest.mark.parametrize("seed", range(3))
def test_fuzz_random_tick_streams_never_give_an_absurd_tempo(seed):
    """Seeded random streams of ticks (bursts, gaps, jitter, real clocks between): whatever tempo
    the follower reports is in its range."""
    rng = np.random.default_rng(seed)
    clock = ClockFollower()
    t = 0.0
    for _ in range(200):
        kind = rng.integers(4)
        n = int(rng.integers(1, 80))
        if kind == 0:
            dt = np.full(n, rng.uniform(1e-6, 1e-3))  # a burst
        elif kind == 1:
            dt = np.full(n, 60 / (rng.uniform(10, 400) * 24)) * rng.uniform(0.9, 1.1, n)  # a clock
        elif kind == 2:
            dt = rng.uniform(0, 0.3, n)  # noise
        else:
            dt = np.array([rng.uniform(0.3, 2.0)])  # a gap
        for d in dt:
            t += float(d)
            clock.tick(t)
            assert clock.bpm is None or 10 <= clock.bpm <= 400


def test_a_clock_burst_leaves_the_session_at_its_own_tempo():
    settings = ServeSettings(keep_key=False, estimate_tempo=False, bpm=100)
    e = Engine(LadderModel(), settings, seed=0)
    burst = [(0.5 + k * 1e-5, mido.Message("clock")) for k in range(300)]
    simulate(e, burst + phrase([60, 62, 64, 65], start=1.0, step=0.3, length=0.25), until=6.0)
    assert (e.bpm, e.tempo_source) == (100, "config")
    (report,) = e.take_reports()
    assert "100 bpm (config)" in report.status_line()
