"""An answer, in three parts with three lives:

* ``CallReading`` — the call as ``Planner.prepare`` read it (tempo, key, texture, register, motif
  source, what to prime from): made once, never changed.
* ``Sampling`` — what the voice has drawn so far (model state, the line, the onset under way): the
  guide's processors read it; a restart (a knob moved before the answer began) starts it afresh.
* ``Playback`` — where the answer sits in time once the call has ended (its grid, its first note,
  a late start's shift) and its exchange's report: ``None`` until it starts.

``planned`` (``Planned`` notes sampled, not sent yet) is the hand-over from sampling to playback.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import mido
import numpy as np

from improv.music.notes import Note
from improv.realtime.dynamics import Dynamics
from improv.realtime.report import Exchange
from improv.realtime.shaping import Motif


@dataclass(eq=False)
class Planned:
    """A sampled answer note, not sent yet."""

    row: np.ndarray
    state: Any  # the model state after stepping this row
    note: Note  # in beats after the answer's first note (its onset: ``note.start``)
    msg: mido.Message  # its note_on, built while sampling (building one costs ~15 us: not in ``due``)
    onset: float | None = None  # seconds, once the answer has started


@dataclass(frozen=True, eq=False)
class CallReading:
    """The call, read once for its answer."""

    version: int  # the window version it was prepared from
    voice: int  # which of the engine's voices samples it
    bpm: float
    tempo_source: str
    key: str
    mask: np.ndarray  # the key's pitches within the range (the range alone without a key)
    target: float  # beats or events, before the length knob
    rows: np.ndarray | None  # rows to prime from (None: the running state is already primed)
    call_rows: list[np.ndarray] | None  # the call's rows re-quantised at the estimated tempo
    pos_after_call: float | None
    max_voices: int = 0  # notes at one onset, at most (0: as the voice likes)
    max_parts: int = 0  # notes sounding at once, held or struck, at most (0: as the voice likes): the call's most
    pitch_bias: np.ndarray | None = None  # added to the pitch logits (the call's register), or None
    tonality: tuple[int, bool] | None = None  # (tonic pitch class, minor) of the call, when estimated
    motif_call: tuple[list[np.ndarray], list[bool]] = field(default_factory=lambda: ([], []))  # the call's rows and chord flags
    call_line: list[int] = field(default_factory=list)  # the call's top line (the skyline), in order
    call_bass: float | None = None  # the median lowest note of the call's chords (None: the call is a line)
    call_density: float = 0.0  # the call's notes per beat (0: unknown)
    dynamics: Dynamics = field(default_factory=lambda: Dynamics(80.0, 6.0, 0.0))  # the call's level, spread and rise
    # The pulse heard from the call (or the clock's), and the call's last event's beat position on
    # it as the model heard it (realtime.tempo).
    pulse: Any = None
    last_pos: float | None = None


@dataclass(eq=False)
class Sampling:
    """What has been drawn: fresh at each (re)start of the sampling."""

    rng: np.random.Generator
    motif: Motif | None = None  # what the answer imitates (serve.imitation)
    density_dial: float = 1.0  # serve.density: the answer's notes per beat over the call's
    memory: Any = None  # the session memory as this answer uses it (a MemoryCursor), or None
    state: Any = None  # after the last sampled row
    base: Any = None  # after priming, before the first sampled row
    primed: int = 0  # rows of the reading's ``rows`` already stepped
    sampled: int = 0
    beats: float = 0.0  # onset of the last sampled event, in beats after the first
    onset_pitches: set[int] = field(default_factory=set)  # pitches at the last sampled onset
    onsets: int = 0  # onsets sampled
    line: list[int] = field(default_factory=list)  # the answer's top line so far, one pitch an onset
    line_pitch: int | None = None  # the top line's latest note (the skyline: highest struck or held)
    line_before: int | None = None  # ... before the onset under way (a chord's motif interval starts there)
    sounding: list[tuple[float, int]] = field(default_factory=list)  # (end beat, pitch) of notes still sounding
    held_top: int = -1  # the highest note held into the onset under way from earlier ones (-1: none)
    closing: bool = False  # its ending note is sampled: only notes of that chord may follow
    model_velocity_sum: float = 0.0
    finished: bool = False  # no more events will be sampled
    finished_target: float = math.inf  # the length that finished it (a longer one resumes sampling)

    def take(self, pitch: int, beats: float, duration: float, new_onset: bool) -> None:
        """A note sampled at ``beats``: the onset under way, what still sounds, the top line (the
        skyline: the highest note struck, or held from before when that is higher)."""
        if new_onset:
            self.onsets += 1
            self.line_before = self.line_pitch
            self.sounding = [(end, p) for end, p in self.sounding if end > beats + 1e-6]
            self.held_top = max((p for _, p in self.sounding), default=-1)
            self.onset_pitches = {pitch}
        else:
            self.onset_pitches = self.onset_pitches | {pitch}
        self.sounding.append((beats + duration, pitch))
        struck = max(self.onset_pitches)
        self.line_pitch = struck if struck >= self.held_top else self.line_before
        if new_onset:
            self.line.append(self.line_pitch)
        elif self.line and self.line_pitch is not None:
            self.line[-1] = self.line_pitch
        self.sampled += 1
        self.beats = beats


@dataclass(eq=False)
class Playback:
    """The answer in time: its first note at beat ``first_beat`` of ``pulse`` (the performer's
    grid, realtime.tempo), sent at ``start``; ``shift``: how far a late start moved it (seconds)."""

    start: float
    pulse: Any
    first_beat: float = 0.0
    shift: float = 0.0
    exchange: Exchange | None = None
    late_dropped: int = 0  # notes dropped for leaving too late (serve.late_policy)
    length: float | None = None  # beats: the call's length fitted to end on a bar line of the grid (realtime.bar_end)


@dataclass(eq=False)
class Answer:
    """An answer: prepared speculatively during the silence, then played."""

    reading: CallReading
    sampling: Sampling
    planned: deque[Planned] = field(default_factory=deque)
    playback: Playback | None = None  # once the call has ended

    def length(self) -> float:
        """Its length in beats before the length knob: the call's, or as fitted to a bar line once it starts."""
        return self.reading.target if self.playback is None or self.playback.length is None else self.playback.length

    @property
    def ready(self) -> bool:
        return self.sampling.base is not None
