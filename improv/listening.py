"""How improv listens: tempo from MIDI clock or from a call, the key of a call, its own echoes.

Pure helpers of the engine: no ports, no clock (times are given). The estimates are plain numpy,
cheap enough to run during the silence before an answer (no music21 on the real-time path).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Sequence

import mido
import numpy as np

CLOCKS_PER_BEAT = 24
_FIT_TICKS = 2 * CLOCKS_PER_BEAT + 1  # the tempo is fitted over the last two beats of pulses
_CHORD_MERGE_S = 0.06  # onsets closer than this are one onset for the tempo estimate


class ClockFollower:
    """Tempo from incoming MIDI clock (24 pulses per beat), smoothed over the last two beats, and
    the beat phase when the transport says where the song is.

    Why the transport: ticks alone tell the tempo, not where the beat falls. Start (the next tick
    is the song's first beat) and Song Position (in sixteenths, 6 ticks each; Continue resumes
    there) give each tick a song position, so beats are the ticks at multiples of 24. Ticks while
    stopped do not move the song; with no Start or Song Position seen, the phase is unknown.
    """

    def __init__(self) -> None:
        self._ticks: deque[float] = deque(maxlen=_FIT_TICKS)  # seconds after ``_origin``
        self.bpm: float | None = None
        self.last_tick = -math.inf
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
            ticks.append(t)
        else:  # sliding: the oldest leaves, every index moves one step down
            dropped = ticks[0]
            ticks.append(t)
            self._sum += t - dropped
            half = (_FIT_TICKS - 1) / 2
            self._ksum += half * dropped + (_FIT_TICKS - half) * t - self._sum
            self._shifts += 1
            if self._shifts >= _FIT_TICKS:  # no rounding drift over a long session
                self._refit()
        self.last_tick = now
        self._fit_last = None
        n = len(ticks)
        if n > CLOCKS_PER_BEAT:  # a whole beat of pulses: a least-squares slope of time per tick
            period = self._ksum / (n * (n * n - 1) / 12)  # sum of squared centred indices
            if period > 0:
                self.bpm = 60.0 / (period * CLOCKS_PER_BEAT)
                self._fit_last = self._origin + self._sum / n + (n - 1) / 2 * period  # less jitter than the raw stamp
        if self._playing and self._next_pos is not None:
            self._last_pos = self._next_pos
            self._next_pos += 1

    def _refit(self) -> None:
        """The sums from the window itself (after a window of incremental updates)."""
        if self._ticks:  # re-based on the window's first tick: small numbers, however long the session
            base = self._ticks[0]
            self._origin += base
            self._ticks = deque((t - base for t in self._ticks), maxlen=_FIT_TICKS)
        centre = (len(self._ticks) - 1) / 2
        self._sum = math.fsum(self._ticks)
        self._ksum = math.fsum((i - centre) * t for i, t in enumerate(self._ticks))
        self._shifts = 0

    def reset(self) -> None:
        self._ticks.clear()
        self._fit_last = None
        self._sum = self._ksum = 0.0
        self._shifts = 0

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
        return self.bpm is not None and now - self.last_tick < 0.3

    def beat_grid(self, now: float) -> tuple[float, float] | None:
        """(time of a beat, seconds per beat) extrapolated from the last tick, or None when the
        clock is not running or its phase is unknown."""
        if not self._playing or self._last_pos is None or self.bpm is None or not self.active(now):
            return None
        period = 60.0 / (self.bpm * CLOCKS_PER_BEAT)
        last = self._fit_last if self._fit_last is not None else self.last_tick
        return last - (self._last_pos % CLOCKS_PER_BEAT) * period, CLOCKS_PER_BEAT * period


GRID_EPS_S = 1e-6  # a decision this close after a grid point is on it (float noise, not music)


def next_grid_point(t: float, origin: float, step: float, eps: float = GRID_EPS_S) -> float:
    """The first point ``origin + k * step`` at or after ``t``; never before ``t``.

    A ``t`` within ``eps`` after a grid point counts as on it (and the result is ``t`` itself):
    the sums that make ``t`` and the grid differ by float noise, and such noise must not cost a
    whole grid step of waiting.
    """
    if step <= 0:
        return t
    k = math.ceil((t - eps - origin) / step)
    return max(origin + k * step, t)


def estimate_bpm(onsets: Sequence[float], around: float, lo: float = 30.0, hi: float = 300.0) -> float | None:
    """The tempo (within an octave centred on ``around``) whose half-beat grid fits the call's
    inter-onset intervals best, or None when no tempo fits well (too few notes, no clear pulse).

    Why an octave around the current tempo: any tempo's double fits the same onsets, so the
    estimate keeps the pulse and lets the current tempo settle the octave.
    """
    times = sorted(onsets)
    distinct: list[float] = []
    for t in times:
        if not distinct or t - distinct[-1] > _CHORD_MERGE_S:
            distinct.append(t)
    iois = np.diff(np.asarray(distinct, dtype=np.float64))
    iois = iois[iois < 2.5]
    if iois.size < 3:
        return None
    candidates = around * np.exp2(np.linspace(-0.5, 0.5, 121))
    candidates = candidates[(candidates >= lo) & (candidates <= hi)]
    if candidates.size == 0:
        return None
    half_beats = iois[None, :] * candidates[:, None] / 30.0
    fit = np.cos(2 * np.pi * half_beats).mean(axis=1)
    score = fit - 0.05 * np.abs(np.log2(candidates / around))  # ties go to the current tempo
    best = int(np.argmax(score))
    return float(candidates[best]) if fit[best] >= 0.8 else None


_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_PROFILES = np.stack([np.roll(_MAJOR, k) for k in range(12)] + [np.roll(_MINOR, k) for k in range(12)])
_PROFILES = (_PROFILES - _PROFILES.mean(axis=1, keepdims=True)) / _PROFILES.std(axis=1, keepdims=True)
_SCALES = (np.array([0, 2, 4, 5, 7, 9, 11]), np.array([0, 2, 3, 5, 7, 8, 10, 11]))  # minor: natural + leading tone
_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]


def estimate_key(pitch_class_weights: np.ndarray) -> tuple[int, bool]:
    """(tonic pitch class, is minor): Krumhansl-Schmuckler, the best-correlated of 24 key profiles."""
    w = np.asarray(pitch_class_weights, dtype=np.float64)
    if w.std() == 0:
        return 0, False
    z = (w - w.mean()) / w.std()
    best = int(np.argmax(_PROFILES @ z))
    return best % 12, best >= 12


def key_name(tonic: int, minor: bool) -> str:
    return f"{_NAMES[tonic]} {'minor' if minor else 'major'}"


def scale_pitch_classes(tonic: int, minor: bool) -> np.ndarray:
    return (_SCALES[minor] + tonic) % 12


class EchoFilter:
    """Recognises improv's own messages coming back through a loopback port.

    Every message improv sends is remembered for ``window_s``; an incoming message equal to one of
    them is an echo and consumes that memory. A note_on matches on channel, pitch and velocity,
    specific enough to tell an echo from the performer. A note-off (or note_on of velocity 0) or a
    controller is not: the performer releasing the key improv just released looks the same. So
    those count as echoes only once a note_on echo has shown that a loopback exists. Once it has,
    the window narrows to a few times the echo delay seen, so a performer striking the key improv
    just struck is taken for an echo only within that (tiny) delay.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.loopback = False  # set by the first note_on echo
        self._delay = 0.0  # the longest echo delay seen
        self._recent: deque[tuple[float, tuple]] = deque()

    @property
    def current_window_s(self) -> float:
        if not self.loopback:
            return self.window_s
        return min(self.window_s, max(0.01, 3 * self._delay))

    @staticmethod
    def _key(msg: mido.Message) -> tuple | None:
        if msg.type == "note_on" and msg.velocity > 0:
            return ("on", msg.channel, msg.note, msg.velocity)
        if msg.type in ("note_on", "note_off"):
            return ("off", msg.channel, msg.note)
        if msg.type == "control_change":
            return ("cc", msg.channel, msg.control, msg.value)
        return None

    def sent(self, msg: mido.Message, t: float) -> None:
        if self.window_s > 0:
            key = self._key(msg)
            if key is not None:
                self._recent.append((t, key))
            # Pruned here too, not only when input arrives: a long answer with no input must not
            # grow the memory (2 windows back: sends are stamped a little ahead of the clock).
            while self._recent and self._recent[0][0] < t - 2 * self.window_s:
                self._recent.popleft()

    def is_echo(self, msg: mido.Message, now: float) -> bool:
        while self._recent and self._recent[0][0] < now - self.window_s:
            self._recent.popleft()
        if not self._recent:
            return False
        key = self._key(msg)
        if key is None or (key[0] != "on" and not self.loopback):
            return False
        window = self.current_window_s
        for i, (t, sent) in enumerate(self._recent):
            if sent == key and now - t <= window:
                del self._recent[i]
                self.loopback = True
                self._delay = max(self._delay, now - t)
                return True
        return False
