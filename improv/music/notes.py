"""Notes as improv sees them, before and after tokenisation. Pure: no files, no clock.

A ``Note`` has an absolute start in beats (quarter notes) from the start of its piece; the
tokenizer turns each into one model event (its offset from the event before, on the grid). Time is in
beats in the corpus and in files; the real-time engine converts to seconds with the current tempo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np


@dataclass(frozen=True, slots=True)
class Note:
    pitch: int  # MIDI pitch 0..127, octave kept
    start: float  # beats from the start of the piece
    duration: float  # beats
    velocity: int  # 1..127

    @property
    def end(self) -> float:
        return self.start + self.duration


BEATS_PER_BAR = 4  # where a piece states no metre: 4/4, as MIDI files do by default

# Notes as columns, for whole pieces: compact (18 bytes a note), cached as they are, and what the
# tokenizer's vectorised grid reads. ``Note`` objects stay the interface for single notes.
NOTE_DTYPE = np.dtype([("pitch", np.uint8), ("velocity", np.uint8), ("start", np.float64), ("duration", np.float64)])


def note_array(notes: Iterable[Note] | np.ndarray) -> np.ndarray:
    """Notes as a ``NOTE_DTYPE`` array (an array of that dtype is returned as it is)."""
    if isinstance(notes, np.ndarray) and notes.dtype == NOTE_DTYPE:
        return notes
    notes = list(notes)
    arr = np.empty(len(notes), dtype=NOTE_DTYPE)
    if notes:
        arr["pitch"] = [fold_pitch(n.pitch) for n in notes]
        arr["velocity"] = [min(max(n.velocity, 0), 127) for n in notes]
        arr["start"] = [n.start for n in notes]
        arr["duration"] = [n.duration for n in notes]
    return arr


def notes_of(arr: np.ndarray) -> list[Note]:
    """The ``Note`` objects of a ``NOTE_DTYPE`` array."""
    return [Note(int(p), float(s), float(d), int(v)) for p, v, s, d in arr.tolist()]


def canonical_order(notes: Iterable[Note]) -> list[Note]:
    """Notes sorted by start, then pitch (lowest first), with unisons merged.

    Why: simultaneous notes must come out in one deterministic order whatever order the parts or
    tracks were read in. Two notes of the same pitch starting together (a unison between parts)
    sound as one; the merged note keeps the longer duration and the louder velocity.
    """
    merged: dict[tuple[float, int], Note] = {}
    for note in notes:
        key = (note.start, note.pitch)
        old = merged.get(key)
        if old is None:
            merged[key] = note
        else:
            merged[key] = Note(note.pitch, note.start, max(old.duration, note.duration), max(old.velocity, note.velocity))
    return [merged[key] for key in sorted(merged)]


def fold_pitches(pitches: np.ndarray) -> np.ndarray:
    """``fold_pitch`` of every pitch into MIDI's 0..127, vectorised."""
    p = np.asarray(pitches, dtype=np.int64)
    p = np.where(p < 0, p + 12 * ((-p + 11) // 12), p)
    return np.where(p > 127, p - 12 * ((p - 116) // 12), p)


def fold_pitch(pitch: int, low: int = 0, high: int = 127) -> int:
    """Bring a pitch into ``low..high`` (default: MIDI's 0..127) by the fewest whole octaves.

    The range must hold a whole octave (``high - low >= 11``): a narrower one has pitch classes no
    octave shift can reach, so that is a ``ValueError``, never a pitch silently left outside.
    """
    if high - low < 11:
        raise ValueError(f"cannot fold pitches into {low}..{high}: the range must span at least an octave")
    if pitch < low:
        return pitch + 12 * -((pitch - low) // 12)
    if pitch > high:
        return pitch - 12 * -((high - pitch) // 12)
    return pitch


def playable(notes: Sequence[Note]) -> list[Note]:
    """Notes a MIDI file can hold unambiguously: a unison inside a chord becomes one note (as
    ``canonical_order`` merges them), and a note still sounding when its pitch is struck again ends
    there. (MIDI has one key per pitch and channel: otherwise the first note-off would silence the
    second note, or a reader would keep a one-tick note.)"""
    ordered = canonical_order(notes)
    out: list[Note] = []
    sounding: dict[int, int] = {}  # pitch -> index in out of its latest note
    for note in ordered:
        i = sounding.get(note.pitch)
        if i is not None and out[i].end > note.start:
            prev = out[i]
            out[i] = Note(prev.pitch, prev.start, note.start - prev.start, prev.velocity)
        sounding[note.pitch] = len(out)
        out.append(note)
    return out
