"""How improv listens: tempo from MIDI clock or from a call, the key of a call, its own echoes.

Pure helpers of the engine: no ports, no clock (times are given). The estimates are plain numpy,
cheap enough to run during the silence before an answer (no music21 on the real-time path).
"""

from __future__ import annotations

import math
from collections import deque
from typing import NamedTuple

import mido

CLOCKS_PER_BEAT = 24


_FIT_TICKS = 2 * CLOCKS_PER_BEAT + 1  # the tempo is fitted over the last two beats of pulses

# What a clock must look like to be followed. A burst of clock bytes (a flood, a buffer flushed
# after a stall, a cable's junk) fits a tempo of thousands of bpm: before these bounds the engine
# clamped it to 400 and held it, as "clock, held", for the rest of the session. The range is
# serve.bpm's; the steadiness bound (the fit's RMS residual, in periods) is loose enough for a
# USB clock's jitter on a busy machine, and far below what a burst among real ticks gives.
MIN_BPM, MAX_BPM = 10.0, 400.0
MAX_JITTER = 0.5


class Grid(NamedTuple):
    """A beat grid from outside improv (a MIDI clock's transport, a Link session): the time of a
    beat, seconds per beat, which beat index after it starts a bar, beats per bar, and its name."""

    beat: float
    beat_s: float
    downbeat: int
    beats_per_bar: int = 4
    source: str = "MIDI clock"


class ClockFollower:
    """Tempo from incoming MIDI clock (24 pulses per beat), smoothed over the last two beats, and
    the beat phase when the transport says where the song is. Only a plausible clock counts
    (``MIN_BPM``..``MAX_BPM``, steady within ``MAX_JITTER``): ticks that are not keep the last
    plausible tempo and do not make the clock ``active``.

    Why the transport: ticks alone tell the tempo, not where the beat falls. Start (the next tick
    is the song's first beat) and Song Position (in sixteenths, 6 ticks each; Continue resumes
    there) give each tick a song position, so beats are the ticks at multiples of 24. Ticks while
    stopped do not move the song; with no Start or Song Position seen, the phase is unknown.
    """

    def __init__(self) -> None:
        self._ticks: deque[float] = deque(maxlen=_FIT_TICKS)  # seconds after ``_origin``
        self.bpm: float | None = None
        self.last_tick = -math.inf
        self.last_good = -math.inf  # the last tick at which the fit was a plausible clock
        self._fit_last: float | None = None  # the fitted time of the last tick (None: no fit at it)
        self._playing = False
        self._next_pos: int | None = None  # song position (ticks) of the next tick; None = unknown
        self._last_pos: int | None = None  # song position of the last tick, while playing
        # The least-squares fit, kept up to date per tick in O(1) (a refit of the whole window on
        # each of 24 ticks per beat cost ~18 us in numpy; this ~2 us): the sum of the times and the
        # sum of (tick index from the window's centre) x time, recomputed exactly once per window.
        self._origin = 0.0
        self._sum = 0.0
        self._ksum = 0.0
        self._sq = 0.0  # the sum of squared times: the fit's residual, for steadiness
        self._shifts = 0

    def tick(self, now: float) -> None:
        ticks = self._ticks
        if ticks and now - self.last_tick > 0.25:  # a gap: the clock stopped and restarted
            self.reset()
        if not ticks:
            self._origin = now
        t = now - self._origin
        n = len(ticks)
        if n < _FIT_TICKS:  # growing: every index moves half a step away from the new centre
            self._ksum += (n * t - self._sum) / 2
            self._sum += t
            self._sq += t * t
            ticks.append(t)
        else:  # sliding: the oldest leaves, every index moves one step down
            dropped = ticks[0]
            ticks.append(t)
            self._sum += t - dropped
            self._sq += t * t - dropped * dropped
            half = (_FIT_TICKS - 1) / 2
            self._ksum += half * dropped + (_FIT_TICKS - half) * t - self._sum
            self._shifts += 1
            if self._shifts >= _FIT_TICKS:  # no rounding drift over a long session
                self._refit()
        self.last_tick = now
        self._fit_last = None
        n = len(ticks)
        if n > CLOCKS_PER_BEAT:  # a whole beat of pulses: a least-squares slope of time per tick
            kk = n * (n * n - 1) / 12  # sum of squared centred indices
            period = self._ksum / kk
            if period > 0 and self._plausible(period, n, kk):
                self.bpm = 60.0 / (period * CLOCKS_PER_BEAT)
                self.last_good = now
                self._fit_last = self._origin + self._sum / n + (n - 1) / 2 * period  # less jitter than the raw stamp
        if self._playing and self._next_pos is not None:
            self._last_pos = self._next_pos
            self._next_pos += 1

    def _plausible(self, period: float, n: int, kk: float) -> bool:
        """A tempo in range, from ticks that keep time (see ``MAX_JITTER``)."""
        bpm = 60.0 / (period * CLOCKS_PER_BEAT)
        if not MIN_BPM <= bpm <= MAX_BPM:
            return False
        residual = self._sq - self._sum * self._sum / n - self._ksum * self._ksum / kk
        return math.sqrt(max(residual, 0.0) / n) <= MAX_JITTER * period

    def _refit(self) -> None:
        """The sums from the window itself (after a window of incremental updates)."""
        if self._ticks:  # re-based on the window's first tick: small numbers, however long the session
            base = self._ticks[0]
            self._origin += base
            self._ticks = deque((t - base for t in self._ticks), maxlen=_FIT_TICKS)
        centre = (len(self._ticks) - 1) / 2
        self._sum = math.fsum(self._ticks)
        self._ksum = math.fsum((i - centre) * t for i, t in enumerate(self._ticks))
        self._sq = math.fsum(t * t for t in self._ticks)
        self._shifts = 0

    def reset(self) -> None:
        self._ticks.clear()
        self._fit_last = None
        self._sum = self._ksum = self._sq = 0.0
        self._shifts = 0

    def handle(self, msg: mido.Message, now: float) -> bool:
        """A clock pulse or a transport message (start, continue, stop, song position); False
        for any other message."""
        kind = msg.type
        if kind == "clock":
            self.tick(now)
        elif kind == "start":
            self.start()
        elif kind == "continue":
            self.resume()
        elif kind == "stop":
            self.stop()
        elif kind == "songpos":
            self.song_position(msg.pos)
        else:
            return False
        return True

    def start(self) -> None:
        """0xFA: the song plays from its top; the next tick is its first beat."""
        self.reset()
        self._playing, self._next_pos, self._last_pos = True, 0, None

    def resume(self) -> None:
        """0xFB (Continue): the song plays on from its position."""
        self.reset()
        self._playing, self._last_pos = True, None

    def stop(self) -> None:
        """0xFC: the song stops where it is (a Continue resumes there)."""
        self.reset()
        self._playing, self._last_pos = False, None

    def song_position(self, sixteenths: int) -> None:
        """0xF2: where the next tick is in the song (6 ticks per sixteenth)."""
        self._next_pos, self._last_pos = sixteenths * CLOCKS_PER_BEAT // 4, None

    def active(self, now: float) -> bool:
        """A plausible clock is running (its last plausible tick was under 0.3 s ago)."""
        return self.bpm is not None and now - self.last_good < 0.3

    def beat_grid(self, now: float) -> tuple[float, float] | None:
        """(time of a beat, seconds per beat) extrapolated from the last tick, or None when the
        clock is not running or its phase is unknown."""
        if not self._playing or self._last_pos is None or self.bpm is None or not self.active(now):
            return None
        period = 60.0 / (self.bpm * CLOCKS_PER_BEAT)
        last = self._fit_last if self._fit_last is not None else self.last_tick
        return last - (self._last_pos % CLOCKS_PER_BEAT) * period, CLOCKS_PER_BEAT * period

    def bar_grid(self, now: float, beats_per_bar: int = 4) -> Grid | None:
        """``beat_grid`` and which beat index after its beat starts a bar (the song's bar lines,
        ``beats_per_bar`` beats apart from song position 0), or None as ``beat_grid``."""
        grid = self.beat_grid(now)
        if grid is None or self._last_pos is None:
            return None
        return Grid(grid[0], grid[1], (-(self._last_pos // CLOCKS_PER_BEAT)) % beats_per_bar, beats_per_bar)
