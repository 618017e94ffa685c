"""A call: the performer's phrase from its first note until it ends, and the rules that end it.

A call ends ``silence`` after the last key and the pedal are up (``serve.silence_ms``, or
``silence_beats`` at the current tempo when longer), at once on the end-of-call controller, or
after ``max_call_beats``. Its notes are kept for the estimates (tempo, key, texture, register,
length) but bounded: a call with no length limit that goes on for an hour keeps its last
``MAX_CALL_NOTES`` notes, not every one.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from improv.realtime.context import WinEvent
from improv.realtime.performer import InNote
from improv.settings.serve_section import ServeSettings

MAX_CALL_NOTES = 512  # what the estimates need, and far more than any phrase
MAX_CALL_EVENTS = 512


@dataclass(eq=False)
class Call:
    first_onset: float
    last_activity: float
    notes: deque[InNote] = field(default_factory=lambda: deque(maxlen=MAX_CALL_NOTES))
    events: deque[WinEvent] = field(default_factory=lambda: deque(maxlen=MAX_CALL_EVENTS))  # heard, in order
    note_count: int = 0  # every note of the call, also those no longer kept
    pos_before: float | None = None  # grid position before the call's first event
    sound_before: float | None = None  # when the last note before the call (either side's) stopped sounding
    end_request: float | None = None  # when the end-of-call controller was pressed

    def add(self, note: InNote) -> None:
        self.notes.append(note)
        self.note_count += 1
        self.last_activity = max(self.last_activity, note.onset)

    def touch(self, t: float) -> None:
        self.last_activity = max(self.last_activity, t)

    def onset_groups(self, chord_s: float) -> list[int]:
        """Notes per onset (notes struck within ``chord_s`` of an onset's first are one onset)."""
        sizes: list[int] = []
        first = None
        for onset in sorted(n.onset for n in self.notes):
            if first is None or onset - first >= chord_s:
                sizes.append(1)
                first = onset
            else:
                sizes[-1] += 1
        return sizes


def threshold_s(settings: ServeSettings, bpm: float) -> float:
    """The silence that ends a call, in seconds."""
    return max(settings.silence_ms / 1000, settings.silence_beats * 60 / bpm)


def end_deadlines(call: Call, performer_quiet: bool, settings: ServeSettings, bpm: float) -> tuple[float | None, float | None, float | None]:
    """(end-of-call controller, maximum length, silence) deadlines, None where not set."""
    limit = call.first_onset + settings.max_call_beats * 60 / bpm if settings.max_call_beats > 0 else None
    silence = call.last_activity + threshold_s(settings, bpm) if performer_quiet else None
    return call.end_request, limit, silence


def end_reason(call: Call, performer_quiet: bool, settings: ServeSettings, bpm: float, now: float) -> tuple[str, float] | None:
    """Why and when the call ended, if it has by ``now``."""
    control, limit, silence = end_deadlines(call, performer_quiet, settings, bpm)
    if control is not None:
        return "control", control
    if silence is not None and now >= silence:
        return "silence", silence
    if limit is not None and now >= limit:
        return "max length", limit
    return None


def quiet_enough(call: Any, performer: Any, settings: ServeSettings) -> bool:
    """The call may be over: enough notes, every key and the pedal up, everything heard."""
    return call is not None and performer.quiet() and not performer.pending and call.note_count >= settings.min_call_notes
