"""MIDI bytes <-> notes, with mido. Pure functions over bytes; callers do the file I/O.

Writing: ``midi_bytes(tracks, bpm)`` makes a type-1 file, one MIDI track per ``Track`` (used by
``improv generate``, ``serve --record`` and the demo).

Reading: ``read_midi(data)`` gives the pitched notes (starts in beats), the initial tempo and a few
facts about the file; ``notes_from_midi_bytes(data)`` only the notes. ``read_midi_file(path)``
reads the bytes and delegates. A file that cannot be read raises ``MIDIConversionError``.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import mido

from improv.errors import MIDIConversionError
from improv.music.notes import Note

TICKS_PER_BEAT = 480


@dataclass
class Track:
    name: str
    notes: list[Note] = field(default_factory=list)
    program: int = 0  # General MIDI program
    channel: int = 0  # 0-based MIDI channel (9 is drums)
    pan: int | None = None  # CC10 at the start (0 left, 64 centre, 127 right); None = the synth's own


def midi_bytes(
    tracks: Sequence[Track],
    bpm: float,
    ticks_per_beat: int = TICKS_PER_BEAT,
    meter: tuple[int, int] = (4, 4),
    tempo_changes: Sequence[tuple[float, float]] = (),
    markers: Sequence[tuple[float, str]] = (),
) -> bytes:
    """A type-1 MIDI file: a tempo track, then one track per ``Track``, notes on the tick grid.

    ``bpm`` is the tempo at the start; ``tempo_changes`` (beat, bpm) change it later (a session
    whose tempo moved); ``markers`` (beat, text) are written as marker events (what each exchange
    was: `improv plot` writes them on the picture). At the same tick, note-offs go before
    note-ons, so a note repeated without a gap is heard twice instead of being cut by its
    predecessor's note-off.
    """
    mid = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    tempo = mido.MidiTrack()
    meta: list[tuple[int, int, mido.MetaMessage]] = [
        (0, 0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0)),
        (0, 1, mido.MetaMessage("time_signature", numerator=meter[0], denominator=meter[1], time=0)),
    ]
    for beat, change in tempo_changes:
        meta.append((max(0, int(round(beat * ticks_per_beat))), 2, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(min(max(change, 10.0), 400.0)), time=0)))
    for beat, text in markers:
        meta.append((max(0, int(round(beat * ticks_per_beat))), 3, mido.MetaMessage("marker", text=text[:120], time=0)))
    now = 0
    for tick, _, msg in sorted(meta, key=lambda m: (m[0], m[1])):
        tempo.append(msg.copy(time=tick - now))
        now = tick
    tempo.append(mido.MetaMessage("end_of_track", time=0))
    mid.tracks.append(tempo)
    for track in tracks:
        mt = mido.MidiTrack()
        mt.append(mido.MetaMessage("track_name", name=track.name, time=0))
        mt.append(mido.Message("program_change", channel=track.channel, program=track.program, time=0))
        if track.pan is not None:
            mt.append(mido.Message("control_change", channel=track.channel, control=PAN_CONTROL, value=track.pan, time=0))
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


# ---- reading ---------------------------------------------------------------------------------

DRUM_CHANNEL = 9  # 0-based: General MIDI channel 10
PAN_CONTROL = 10  # CC10, the channel's place in the stereo image
DEFAULT_BPM = 120.0  # the tempo a MIDI file has until its first set_tempo (the MIDI file spec)
# No real piece lasts this long (about 14 hours at 120 bpm); a file whose notes do is made of
# absurd delta times, and laying it out (MusicXML's bars, a written prompt) would not end.
MAX_BEATS = 100_000
SUSTAIN_CONTROL = 64  # CC64, the damper pedal: >= 64 is down


@dataclass(frozen=True)
class MidiContent:
    """What ``read_midi`` finds in one file."""

    notes: list[Note]  # every pitched note, starts in beats, sorted by (start, pitch)
    bpm: float  # the tempo in effect at the first note (120 if the file sets none by then)
    tempo_changes: int  # set_tempo events that change the tempo (beats do not move with them)
    ticks_per_beat: int
    midi_type: int  # 0, 1 or 2
    drum_notes: int  # notes on channel 10, left out of ``notes``
    meter: tuple[int, int] | None = None  # the first time signature (numerator, denominator), if any
    markers: list[tuple[float, str]] = field(default_factory=list)  # (beat, text) of marker events
    parts: list[Part] = field(default_factory=list)  # the same notes per track and channel
    tempi: list[tuple[float, float]] = field(default_factory=list)  # (beat, bpm) of every set_tempo


@dataclass(frozen=True)
class Part:
    """The notes one track plays on one channel (a type-0 file keeps its parts apart by channel):
    what a picture of the file draws in one colour."""

    name: str  # the track's name, else "track N" (plus "ch. N" when the track uses several channels)
    track: int
    channel: int  # 0-based
    program: int | None  # the first Program Change on that channel in that track, if any
    notes: list[Note]


@dataclass
class _RawNote:
    start: int  # ticks
    end: int  # ticks
    pitch: int
    velocity: int
    channel: int
    track: int


def notes_from_midi_bytes(data: bytes) -> list[Note]:
    """The pitched notes of a MIDI file (drums left out), starts in beats; see ``read_midi``."""
    return read_midi(data).notes


def read_midi_file(path: str | os.PathLike[str]) -> MidiContent:
    """``read_midi`` on a file's bytes; an unreadable file is a ``MIDIConversionError`` too."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise MIDIConversionError(f"cannot read {path}: {exc.strerror or exc}") from None
    return read_midi(data)


def read_midi(data: bytes, sustain: bool = True) -> MidiContent:
    """Notes and initial tempo of a standard MIDI file (type 0, 1 or 2), from its bytes.

    * Starts are in beats, ``tick / ticks_per_beat``: tempo changes move seconds, not beats.
    * Every track and channel is read; channel 10 (drums) is left out.
    * A note_on with velocity 0 is a note_off; a pitch struck again while it sounds (same track
      and channel) ends the earlier note there; a note never released ends with its track.
    * The sustain pedal (CC64 >= 64) holds notes released under it until the pedal comes up or the
      same pitch is struck again, as Magenta's note-seq does, but per channel across tracks: a
      synthesizer applies a channel's pedal to every track playing on that channel.
    * Type 2 tracks are independent sequences: they are read one after the other.
    * A zero-length note is kept, one tick long.
    * A set_tempo of 0 microseconds per beat (no tempo at all) is ignored; notes that end after
      ``MAX_BEATS`` make the file unreadable (absurd delta times).

    ``sustain=False`` ignores the pedal (notes end at their note_off, as music21 reads MIDI).
    Anything mido cannot read raises ``MIDIConversionError`` with a one-line reason.
    """
    mid = _parse(data)
    tpb = mid.ticks_per_beat
    raw, pedals, tempos, ends, drums, meters, marks, labels = _collect(mid)
    file_end = max(ends, default=0)
    if sustain:
        _apply_sustain(raw, pedals, file_end, per_track=mid.type == 2)
    first_tick = min((n.start for n in raw), default=0)
    bpm = _tempo_at(tempos, first_tick)
    changes = sum(1 for (_, a), (_, b) in zip(tempos, tempos[1:]) if a != b)
    to_beats = _tick_scale(tpb, tempos)
    notes = [
        Note(n.pitch, n.start * to_beats, max(n.end - n.start, 1) * to_beats, n.velocity)
        for n in raw
    ]
    order = sorted(range(len(raw)), key=lambda i: (notes[i].start, notes[i].pitch, notes[i].duration))
    last = max((n.end for n in notes), default=0.0)
    if last > MAX_BEATS:
        raise MIDIConversionError(f"notes run to beat {last:.0f}, past {MAX_BEATS} (absurd delta times)")
    meter = min(meters)[1:] if meters else None
    markers = [(tick * to_beats, text) for tick, text in sorted(marks)]
    tempi = [(tick * to_beats, round(float(mido.tempo2bpm(tempo)), 3)) for tick, tempo in tempos]
    parts = _parts([(raw[i], notes[i]) for i in order], labels)
    return MidiContent([notes[i] for i in order], bpm, changes, tpb, mid.type, drums, meter, markers, parts, tempi)


def _parts(notes: list[tuple[_RawNote, Note]], labels: tuple[dict, dict]) -> list[Part]:
    """Group the (sorted) notes by track and channel, named by the track and programmed by its
    first Program Change on that channel."""
    names, programs = labels
    groups: dict[tuple[int, int], list[Note]] = {}
    for raw, note in notes:
        groups.setdefault((raw.track, raw.channel), []).append(note)
    channels: dict[int, int] = {}
    for track, _ in groups:
        channels[track] = channels.get(track, 0) + 1
    parts = []
    for (track, channel), group in sorted(groups.items()):
        name = names.get(track) or f"track {track + 1}"
        if channels[track] > 1:
            name = f"{name} ch. {channel + 1}"
        parts.append(Part(name, track, channel, programs.get((track, channel)), group))
    return parts


def _parse(data: bytes) -> mido.MidiFile:
    if not data:
        raise MIDIConversionError("empty file (0 bytes)")
    if data[:4] == b"RIFF" and data[8:12] == b"RMID":
        data = data[max(data.find(b"MThd"), 0) :]  # an RMID file wraps a standard MIDI file
    if data[:4] != b"MThd":
        raise MIDIConversionError("not a MIDI file (it does not start with an MThd header)")
    try:
        mid = mido.MidiFile(file=io.BytesIO(data))
    except EOFError:
        raise MIDIConversionError("truncated MIDI file (it ends inside a chunk)") from None
    except Exception as exc:  # noqa: BLE001 - mido raises OSError, ValueError, KeyError, its own
        # KeySignatureError, IndexError ... on malformed input; all of them mean "unreadable file".
        raise MIDIConversionError(_reason(exc)) from None
    if mid.type not in (0, 1, 2):
        raise MIDIConversionError(f"unknown MIDI file type {mid.type}")
    if mid.ticks_per_beat == 0:
        raise MIDIConversionError("MIDI header gives 0 ticks per beat")
    return mid


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"unreadable MIDI file ({text[:120]})"


def _collect(mid: mido.MidiFile):
    """Pair note_on/note_off per (track, channel, pitch); gather pedal and tempo events.

    Returns (notes, pedal events (tick, track, order, channel, down), tempos (tick, us per beat),
    end tick of each track, number of drum notes, time signatures (tick, numerator, denominator),
    markers (tick, text), (track names by track, first program by (track, channel))).
    """
    raw: list[_RawNote] = []
    pedals: list[tuple[int, int, int, int, bool]] = []
    tempos: list[tuple[int, int]] = []
    meters: list[tuple[int, int, int]] = []
    marks: list[tuple[int, str]] = []
    names: dict[int, str] = {}
    programs: dict[tuple[int, int], int] = {}
    ends: list[int] = []
    drums = 0
    offset = 0  # type 2: each track starts where the previous one ended
    for ti, track in enumerate(mid.tracks):
        tick = offset
        sounding: dict[tuple[int, int], _RawNote] = {}
        for order, msg in enumerate(track):
            tick += msg.time
            kind = msg.type
            if kind == "note_on" or kind == "note_off":
                if msg.channel == DRUM_CHANNEL:
                    drums += kind == "note_on" and msg.velocity > 0
                    continue
                key = (msg.channel, msg.note)
                earlier = sounding.pop(key, None)
                if earlier is not None:
                    earlier.end = tick  # released, or re-struck while sounding
                if kind == "note_on" and msg.velocity > 0:
                    note = _RawNote(tick, tick, msg.note, msg.velocity, msg.channel, ti)
                    sounding[key] = note
                    raw.append(note)
            elif kind == "control_change" and msg.control == SUSTAIN_CONTROL and msg.channel != DRUM_CHANNEL:
                pedals.append((tick, ti, order, msg.channel, msg.value >= 64))
            elif kind == "set_tempo" and msg.tempo > 0:  # 0 us per beat is no tempo (and a division by zero)
                tempos.append((tick, msg.tempo))
            elif kind == "time_signature" and msg.numerator > 0:
                meters.append((tick, msg.numerator, msg.denominator))
            elif kind == "marker":
                marks.append((tick, msg.text))
            elif kind == "track_name" and ti not in names and msg.name.strip():
                names[ti] = msg.name.strip()
            elif kind == "program_change":
                programs.setdefault((ti, msg.channel), msg.program)
        for note in sounding.values():
            note.end = tick  # never released: ends with its track
        ends.append(tick)
        if mid.type == 2:
            offset = tick
    tempos.sort(key=lambda t: t[0])  # stable: file order within a tick
    return raw, pedals, tempos, ends, drums, meters, marks, (names, programs)


# Event kinds in the order note-seq processes them within one tick.
_SUS_ON, _SUS_OFF, _NOTE_ON, _NOTE_OFF = 0, 1, 2, 3


def _apply_sustain(raw: list[_RawNote], pedals: list, file_end: int, per_track: bool) -> None:
    """Extend notes released under the sustain pedal, in place (note-seq's algorithm)."""
    if not pedals:
        return
    group = (lambda track, channel: (track, channel)) if per_track else (lambda track, channel: channel)
    events: dict[object, list[tuple]] = {}
    state: dict[object, bool] = {}
    for tick, track, order, channel, down in sorted(pedals):
        g = group(track, channel)
        if state.get(g, False) != down:  # only changes of the pedal matter
            state[g] = down
            events.setdefault(g, []).append((tick, _SUS_ON if down else _SUS_OFF, order, None))
    if not events:
        return
    for i, note in enumerate(raw):
        g = group(note.track, note.channel)
        if g in events:
            events[g].append((note.start, _NOTE_ON, i, note))
            events[g].append((note.end, _NOTE_OFF, i, note))
    for g, seq in events.items():
        seq.sort(key=lambda e: (e[0], e[1], e[2]))
        _sustain_one(seq, file_end)


def _sustain_one(seq: list[tuple], file_end: int) -> None:
    down = False
    active: list[_RawNote] = []  # notes still sounding: held by a key or by the pedal
    held: dict[int, None] = {}  # id(note) of notes whose key is still down
    for tick, kind, _, note in seq:
        if kind == _SUS_ON:
            down = True
        elif kind == _SUS_OFF:
            down = False
            keep = []
            for n in active:
                if id(n) in held:
                    keep.append(n)
                else:
                    n.end = tick  # released under the pedal: sounds until the pedal comes up
            active = keep
        elif kind == _NOTE_ON:
            if down:  # a pitch struck again under the pedal cuts its held predecessor
                keep = []
                for n in active:
                    if n.pitch == note.pitch:
                        n.end = tick
                        held.pop(id(n), None)
                    else:
                        keep.append(n)
                active = keep
            active.append(note)
            held[id(note)] = None
        else:  # _NOTE_OFF: the key comes up
            if id(note) not in held:
                continue  # already cut by a re-strike under the pedal
            del held[id(note)]
            if not down:
                active.remove(note)
    for n in active:
        if id(n) not in held:
            n.end = file_end  # the pedal never came up


def _tempo_at(tempos: list[tuple[int, int]], tick: int) -> float:
    """Beats per minute in effect at ``tick`` (120 before the first set_tempo)."""
    bpm = DEFAULT_BPM
    for at, tempo in tempos:
        if at > tick:
            break
        bpm = mido.tempo2bpm(tempo)
    return round(float(bpm), 3)


def _tick_scale(ticks_per_beat: int, tempos: list[tuple[int, int]]) -> float:
    """Beats per tick. A negative division is SMPTE time (frames per second x ticks per frame):
    its ticks are seconds, turned into beats at the file's first tempo (120 if it sets none)."""
    if ticks_per_beat > 0:
        return 1.0 / ticks_per_beat
    fps = 256 - ((ticks_per_beat & 0xFFFF) >> 8)
    per_frame = ticks_per_beat & 0xFF
    if per_frame == 0:
        raise MIDIConversionError("MIDI header gives SMPTE time with 0 ticks per frame")
    bpm = mido.tempo2bpm(tempos[0][1]) if tempos else DEFAULT_BPM
    return bpm / 60.0 / (fps * per_frame)
