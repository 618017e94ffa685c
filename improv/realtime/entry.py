"""When an answer enters: the beats it may start on, and its playback placed on the performer's grid.

The grid is the MIDI clock's beats (and bars) when a followed clock's transport places them; else
the pulse heard from the call (``realtime.tempo``); else the call's first onset on a beat at the
answer's tempo. The first note goes on the first allowed beat after the decision and a breath
(``answer_lead_beats``), early enough for the output latency to be made up; every later note is
placed on the same grid (``tempo.answer_time``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from improv.music.rhythm import next_grid_point
from improv.realtime.answer import Answer, Playback
from improv.realtime.bar_end import bar_end
from improv.realtime.clock_follower import Grid
from improv.realtime.tempo import answer_time, fallback_pulse, grid_pulse, latency_s
from improv.settings.serve_section import ServeSettings


def entry_period(settings: ServeSettings, pulse: Any, tempo_source: str) -> tuple[int, int] | None:
    """(every, phase): the beats the answer may enter on, when not any beat: the downbeats
    (``entry: bar``), or, on a grid heard from the call in an even metre, every other beat in
    step with the downbeat: a strong beat (where the level heard is the performer's eighths,
    as for a call at 56 bpm heard at 112, the performer's beat)."""
    if pulse is None:
        return None
    if settings.entry == "bar":
        return pulse.beats_per_bar, pulse.downbeat
    heard = tempo_source == "estimate"  # a clock's beat is the beat: no guessing at the level
    if heard and settings.answer_grid_beats == 1 and pulse.beats_per_bar % 2 == 0:
        return 2, pulse.downbeat % 2
    return None


def place_answer(settings: ServeSettings, answer: Answer, decided: float, first_onset: float, clock_grid: Grid | None) -> tuple[Playback, str]:
    """The answer's playback (its first note's beat and time on the grid, and, on a grid with bar
    lines, its length to a bar line) and what the first note is aligned to ("" = at once)."""
    s, reading = settings, answer.reading
    if clock_grid is not None:
        pulse = grid_pulse(clock_grid, s)
    else:
        pulse = reading.pulse if reading.pulse is not None else fallback_pulse(reading.bpm, first_onset, s)
    early = max(latency_s(s, 1), latency_s(s, 127))
    earliest = decided + s.answer_lead_beats * pulse.beat_s + early  # a breath, in beats: the same at any tempo
    beats = s.answer_grid_beats
    of_clock = f" of the {clock_grid.source}" if clock_grid is not None else ""
    period = entry_period(s, pulse, reading.tempo_source)
    if period is not None:
        first_beat = float(pulse.next_beat(earliest, *period))
        name = ("downbeat" if s.entry == "bar" else "strong beat") + of_clock
    elif beats <= 0:
        pulse, first_beat, name = replace(pulse, origin=earliest), 0.0, ""  # no grid: from now on
    else:
        first_beat = (next_grid_point(earliest, pulse.origin, beats * pulse.beat_s) - pulse.origin) / pulse.beat_s
        name = ("beat" if beats == 1 else "half beat" if beats == 0.5 else f"{beats:g}-beat grid") + of_clock
    first_velocity = answer.planned[0].note.velocity if answer.planned else 64
    playback = Playback(start=0.0, pulse=pulse, first_beat=first_beat)
    playback.start = answer_time(playback, 0.0, first_velocity, s)
    if s.phrase_ending and (reading.pulse is not None or clock_grid is not None) and s.response_unit == "beats" and not s.response_length:
        playback.length = bar_end(pulse, first_beat, reading.target)  # the answer ends on a bar line, as a phrase does (realtime.bar_end)
    return playback, name
