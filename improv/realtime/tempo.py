"""The tempo of the set and the answer's timing on the performer's grid.

``SetTempo`` hears each call's pulse (``music.pulse``) with the tempo of the set as its prior, so
the metrical level stays where the set has been (a call of plain quarters at 60 after calls at 60
is heard at 60, not 120), follows a gradual change (each call's own tempo is measured, the prior
only picks among levels), and after a long pause hears the next call anew, with ``serve.bpm`` as
the prior again. Pure: the engine gives it calls and times.

``answer_time`` is where an answer's note at ``beats`` (after its first) goes in seconds: on the
pulse's grid, with its swing, sent ``output_latency_ms`` early (per velocity when a table is given).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from improv.music.metre import meter
from improv.music.pulse import Pulse, groups, snap
from improv.music.pulse_line import carry, retempo
from improv.music.pulse_track import track
from improv.settings.serve_section import ServeSettings

FRESH_WEIGHT = 0.1  # prior weight per octave in the comb when the set has no tempo yet (serve.bpm is a guess)
SET_WEIGHT = 0.35  # ... once the set has one
# A silence longer than all three (seconds, beats and bars of the set) is a long pause: the next
# call may be in a new tempo and is heard anew. Between the first two and the bars (a slow set's
# long bar, the performer waiting for the next one), the set's grid still carries, but the comb
# is as loose as for a fresh call (FRESH_WEIGHT), so the set's tempo cannot pull a new one to 3:2.
PAUSE_S, PAUSE_BEATS, PAUSE_BARS = 6.0, 8.0, 2.0
BLEND_WITHIN = 0.04  # a call this close to the set's tempo is taken as the same tempo, measured again


def _heard(notes: list[Any], now: float) -> tuple[list[float], list[float], list[int]]:
    """Onsets, lengths (a key still down: until ``now``) and velocities, as the comb reads them."""
    durations = [max((n.off if n.off is not None else now) - n.onset, 0.01) for n in notes]
    return [n.onset for n in notes], durations, [n.velocity for n in notes]


def call_pulse(notes: list[Any], settings: ServeSettings, now: float) -> Pulse | None:
    """A call's own tempo and phase, heard as the set's first call is (``serve.bpm`` the prior,
    the fresh weight), without its metre: None without a clear pulse (``pulse_track.track``)."""
    onsets, durations, velocities = _heard(notes, now)
    return track(onsets, settings.bpm, FRESH_WEIGHT, durations, velocities, settings.chord_ms / 1000)


class SetTempo:
    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.bpm: float | None = None  # the tempo of the set, once a call has been heard
        self.beats_per_bar = 4
        # The set's grid as the performer kept it: (onset times, note counts, the grid) of the last
        # calls (``pulse.carry``); None when the set starts anew.
        self.past: tuple[np.ndarray, np.ndarray, Pulse] | None = None
        self._heard: tuple[Pulse | None, Any] = (None, None)  # the pulse last heard, and the past it would leave
        self.last: Pulse | None = None  # the pulse last heard (its bar and how clear it was: the benchmark reads it)

    def pause(self, call: Any) -> float:
        """The silence before this call, from the end of the last note anyone played (the answer's
        included: a held last note is no pause); infinite with no tempo or nothing before."""
        if self.bpm is None or call.pos_before is None:
            return float("inf")
        last = call.pos_before if call.sound_before is None else max(call.pos_before, call.sound_before)
        return call.first_onset - last

    def fresh(self, call: Any) -> bool:
        """No tempo yet, or a long pause before this call, in seconds, beats and the set's bars, in
        which the performer may have chosen a new tempo."""
        if self.bpm is None:
            return True
        beat = 60 / self.bpm
        return self.pause(call) > max(PAUSE_S, PAUSE_BEATS * beat, PAUSE_BARS * self.beats_per_bar * beat)

    def _weight(self, call: Any) -> float:
        """The prior's pull in the comb: the set's, unless the pause was long in seconds and beats
        (only the set's long bars kept it from being heard anew): then a fresh call's."""
        assert self.bpm is not None
        return SET_WEIGHT if self.pause(call) <= max(PAUSE_S, PAUSE_BEATS * 60 / self.bpm) else FRESH_WEIGHT

    def hear(self, call: Any, now: float) -> Pulse | None:
        """The call's pulse (tempo, phase, metre, swing), or None when it has no clear one."""
        notes = list(call.notes)
        if len(notes) < 4:
            return None
        onsets, durations, velocities = _heard(notes, now)
        fresh = self.fresh(call)
        prior = self.settings.bpm if fresh else self.bpm
        assert prior is not None
        chord_s = self.settings.chord_ms / 1000
        pulse = track(onsets, prior, FRESH_WEIGHT if fresh else self._weight(call), durations, velocities, chord_s)
        kept = False  # the call on the set's grid as the performer kept it: the set's bar lines go on too
        if not fresh and self.past is not None and (pulse is None or (not pulse.bent and abs(pulse.bpm / prior - 1) >= BLEND_WITHIN)):
            # The call alone says another tempo (or none): where its onsets still lie on the set's
            # grid as the performer kept it, that is the tempo (a short or swung call misleads the
            # comb more often than a player changes tempo without a pause).
            joined = self._on_set_grid(onsets, chord_s)
            # ... and as plainly as on its own (on a fast set grid, a new tempo's quarters still
            # land near some sixteenth or triplet: that is not a kept grid)
            if joined is not None and (pulse is None or finer(joined[0], onsets) <= max(finer(pulse, onsets) + 0.1, 0.3)):
                pulse, kept = joined[0], True
        if pulse is None:
            return None
        times, first = groups(onsets, chord_s)
        past = (times, np.diff(np.append(first, len(onsets))).astype(np.float64), pulse)
        if not fresh and not pulse.bent and abs(pulse.bpm / prior - 1) < BLEND_WITHIN:
            # The same tempo as the set's, within what one call can tell. Where the performer kept
            # the set's grid, one line through this call and the last ones; else the set's tempo
            # and the call's averaged (a jittered call's own period, extrapolated over the answer,
            # is off by tens of ms), the phase the call's.
            joined = carry(pulse, onsets, self.past, chord_s) if self.past is not None else None
            if joined is None and self.past is not None:
                # The call's own phase can sit on its off-beats (long swung eighths after
                # short notes: the answer entered 0.37 of a beat off); its onsets on the set's grid.
                joined = self._on_set_grid(onsets, chord_s)
            if joined is not None:
                (pulse, past), kept = joined, True
            else:
                pulse = retempo(pulse, onsets, (pulse.bpm + prior) / 2, chord_s)
                past = (times, past[1], pulse)
        bar = self._set_bar(pulse) if kept else None
        pulse = meter(pulse, onsets, durations, velocities, [n.pitch for n in notes], prefer=self.beats_per_bar, prefer_downbeat=bar)
        pulse = replace(pulse, swing=self.settings.swing) if self.settings.swing > 0 else pulse
        self._heard = (pulse, (past[0], past[1], pulse))
        self.last = pulse
        return pulse

    def _set_bar(self, pulse: Pulse) -> int | None:
        """The set's downbeat as a beat index of ``pulse`` (a call heard on the set's grid), or None."""
        if self.past is None:
            return None
        grid = self.past[2]
        x = pulse.position(grid.time(grid.downbeat))
        return round(x) if abs(x - round(x)) < 0.25 else None

    def _on_set_grid(self, onsets: list[float], chord_s: float) -> tuple[Pulse, Any] | None:
        """The call on the set's grid, its first onset on that grid's nearest beat, fitted with the
        last calls (``carry``, strict: its own onsets must lie on the line), or None."""
        assert self.past is not None
        grid = self.past[2]
        kept = replace(grid, origin=grid.time(round(grid.position(onsets[0]))), bent=False)
        return carry(kept, onsets, self.past, chord_s, strict=True)

    def keep(self, pulse: Pulse) -> None:
        """The answer to this call starts: its tempo becomes the set's (and its grid, for the next
        call to be fitted with, when it is the pulse last heard)."""
        self.bpm = pulse.bpm
        self.beats_per_bar = pulse.beats_per_bar
        self.past = self._heard[1] if self._heard[0] is pulse else None


def finer(pulse: Pulse, onsets: list[float]) -> float:
    """The share of onsets that ``pulse`` puts off its beats and half beats (on sixteenths or
    triplets): how intricate the phrase would be, read on that grid."""
    pos = np.array([snap(pulse.position(t)) for t in onsets])
    return float(np.mean(np.abs(pos * 2 - np.round(pos * 2)) > 1e-6))


def fallback_pulse(bpm: float, origin: float, settings: ServeSettings) -> Pulse:
    """The grid without an estimate: the given tempo, a beat at ``origin`` (the call's first onset
    or the MIDI clock's beat), the configured swing."""
    return Pulse(bpm=bpm, origin=origin, swing=settings.swing if settings.swing > 0 else 1.0)


def grid_pulse(grid: Any, settings: ServeSettings) -> Pulse:
    """The grid of a followed MIDI clock or Link session (``clock_follower.Grid``) as a pulse."""
    return replace(fallback_pulse(60 / grid.beat_s, grid.beat, settings), downbeat=grid.downbeat, beats_per_bar=grid.beats_per_bar)


def latency_s(settings: ServeSettings, velocity: int) -> float:
    """How early a note of ``velocity`` is sent so that it sounds on time."""
    table = settings.output_latency_by_velocity
    ms = settings.output_latency_ms
    if table:
        v = np.array([p[0] for p in table], dtype=np.float64)
        m = np.array([p[1] for p in table], dtype=np.float64)
        order = np.argsort(v)
        ms += float(np.interp(velocity, v[order], m[order]))
    return ms / 1000


def answer_time(playback: Any, beats: float, velocity: int, settings: ServeSettings) -> float:
    """When the answer's note ``beats`` after its first is sent: its place on the performer's grid
    (the answer's first note at beat ``playback.first_beat`` of ``playback.pulse``), minus the latency."""
    pulse: Pulse = playback.pulse
    return pulse.time(playback.first_beat + beats) - latency_s(settings, velocity) + playback.shift


def landing_mask(values: np.ndarray, position: float | None, first: bool, bar: tuple[int, int] | None) -> np.ndarray | None:
    """Offset classes that put the next onset on the performer's grid. The first answer note
    lands on a beat (``bar``: (beats per bar, downbeat) = on a downbeat) after ``position``, the
    call's last event; later ones on a sixteenth or triplet of the beat (or join the onset: 0).
    None when no class qualifies (nothing to restrict)."""
    if position is None:
        return None
    landing = position + values
    if first:
        if bar is not None:
            phase = np.mod(landing - bar[1], bar[0])
            ok = (np.minimum(phase, bar[0] - phase) < 1e-6) & (values > 0)
        else:
            ok = (np.abs(landing - np.round(landing)) < 1e-6) & (values > 0)
    else:
        f = np.mod(landing, 1.0)
        ok = np.zeros(len(values), dtype=bool)
        for g in (0.0, 0.25, 1 / 3, 0.5, 2 / 3, 0.75, 1.0):
            ok |= np.abs(f - g) < 1e-6
        ok[0] = True
    return ok if ok.any() else None
