"""An answer in the making: what ``Planner`` prepared from the call and what it has sampled
so far (``Planned`` notes not sent yet, and what the guide needs to know of the line and chords)."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import mido
import numpy as np

from improv.realtime.dynamics import Dynamics
from improv.realtime.report import Exchange
from improv.realtime.shaping import Motif


@dataclass(eq=False)
class Planned:
    """A sampled answer note, not sent yet."""

    row: np.ndarray
    state: Any  # the model state after stepping this row
    beats: float  # onset in beats after the answer's first note
    duration_beats: float
    pitch: int
    velocity: int
    msg: mido.Message  # its note_on, built while sampling (building one costs ~15 us: not in ``due``)
    onset: float | None = None  # seconds, once the answer has started


@dataclass(eq=False)
class Answer:
    """An answer: prepared speculatively during the silence, then played."""

    version: int  # the window version it was prepared from
    voice: int  # which of the engine's voices samples it
    bpm: float
    tempo_source: str
    key: str
    rng: np.random.Generator
    mask: np.ndarray
    target: float  # beats or events, before the length knob
    rows: np.ndarray | None  # rows to prime from (None: the running state is already primed)
    call_rows: list[np.ndarray] | None  # the call's rows re-quantised at the estimated tempo
    pos_after_call: float | None
    max_voices: int = 0  # notes at one onset, at most (0: as the voice likes)
    pitch_bias: np.ndarray | None = None  # added to the pitch logits (the call's register), or None
    tonality: tuple[int, bool] | None = None  # (tonic pitch class, minor) of the call, when estimated
    motif_call: tuple[list[np.ndarray], list[bool]] = field(default_factory=lambda: ([], []))  # the call's rows and chord flags
    motif: Motif | None = None  # what the answer imitates (serve.imitation)
    call_line: list[int] = field(default_factory=list)  # the call's top line (the skyline), in order
    call_bass: float | None = None  # the median lowest note of the call's chords (None: the call is a line)
    call_density: float = 0.0  # the call's notes per beat (0: unknown)
    density_dial: float = 1.0  # serve.density: the answer's notes per beat over the call's
    line: list[int] = field(default_factory=list)  # the answer's top line so far, one pitch an onset
    dynamics: Dynamics = field(default_factory=lambda: Dynamics(80.0, 6.0, 0.0))  # the call's level, spread and rise
    state: Any = None  # after the last sampled row
    base: Any = None  # after priming, before the first sampled row
    primed: int = 0  # rows of ``rows`` already stepped
    planned: deque = field(default_factory=deque)
    sampled: int = 0
    beats: float = 0.0  # onset of the last sampled event, in beats after the first
    onset_pitches: set[int] = field(default_factory=set)  # pitches at the last sampled onset
    onsets: int = 0  # onsets sampled
    line_pitch: int | None = None  # the top line's latest note (the skyline: highest struck or held)
    line_before: int | None = None  # ... before the onset under way (a chord's motif interval starts there)
    sounding: list[tuple[float, int]] = field(default_factory=list)  # (end beat, pitch) of notes still sounding
    held_top: int = -1  # the highest note held into the onset under way from earlier ones (-1: none)
    closing: bool = False  # its ending note is sampled: only notes of that chord may follow
    model_velocity_sum: float = 0.0
    finished: bool = False  # no more events will be sampled
    finished_target: float = math.inf  # the length that finished it (a longer one resumes sampling)
    start: float | None = None
    exchange: Exchange | None = None
    late_dropped: int = 0  # notes dropped for leaving too late (serve.late_policy)
    # The performer's grid (realtime.tempo): the pulse heard from the call (or the clock's, or the
    # configured tempo's), the call's last event's beat position on it as the model heard it, the
    # beat the answer's first note falls on, and how far a late start moved the answer (seconds).
    pulse: Any = None
    last_pos: float | None = None
    first_beat: float = 0.0
    shift: float = 0.0
    memory: Any = None  # the session memory as this answer uses it (a MemoryCursor), or None

    @property
    def ready(self) -> bool:
        return self.base is not None
