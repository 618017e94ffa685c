"""MIDI bytes <-> notes, with mido. Pure functions over bytes; callers do the file I/O.

Writing: ``midi_bytes(tracks, bpm)`` makes a type-1 file, one MIDI track per ``Track`` (used by
``improv generate``, ``serve --record`` and the demo).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Sequence

import mido

from .events import Note

TICKS_PER_BEAT = 480


@dataclass
class Track:
    name: str
    notes: list[Note] = field(default_factory=list)
    program: int = 0  # General MIDI program
    channel: int = 0  # 0-based MIDI channel (9 is drums)


def midi_bytes(tracks: Sequence[Track], bpm: float, ticks_per_beat: int = TICKS_PER_BEAT) -> bytes:
    """A type-1 MIDI file: a tempo track, then one track per ``Track``, notes on the tick grid.

    At the same tick, note-offs go before note-ons, so a note repeated without a gap is heard
    twice instead of being cut by its predecessor's note-off.
    """
    mid = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    tempo = mido.MidiTrack()
    tempo.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    tempo.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    tempo.append(mido.MetaMessage("end_of_track", time=0))
    mid.tracks.append(tempo)
    for track in tracks:
        mt = mido.MidiTrack()
        mt.append(mido.MetaMessage("track_name", name=track.name, time=0))
        mt.append(mido.Message("program_change", channel=track.channel, program=track.program, time=0))
        timed: list[tuple[int, int, int, int]] = []  # (tick, 0=off/1=on, pitch, velocity)
        for note in track.notes:
            on = max(0, int(round(note.start * ticks_per_beat)))
            off = max(on + 1, int(round(note.end * ticks_per_beat)))
            timed.append((on, 1, note.pitch, note.velocity))
            timed.append((off, 0, note.pitch, 0))
        timed.sort()
        now = 0
        for tick, is_on, pitch, velocity in timed:
            kind = "note_on" if is_on else "note_off"
            mt.append(mido.Message(kind, channel=track.channel, note=pitch, velocity=velocity, time=tick - now))
            now = tick
        mt.append(mido.MetaMessage("end_of_track", time=0))
        mid.tracks.append(mt)
    buffer = io.BytesIO()
    mid.save(file=buffer)
    return buffer.getvalue()
