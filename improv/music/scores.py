"""music21's score formats (MusicXML, Humdrum, ABC, MEI, ...) -> notes: improv's only music21 reader.

music21 is imported inside the functions, and only when such a file has to be parsed, so a run
whose files all come from the cache (or are all MIDI, read by ``midi_io``) never imports it. The
only other module that imports music21 is ``generate``, for MusicXML export.

What a score gives: every part's notes with ties joined, chords expanded (octaves kept), grace
notes and unpitched percussion left out, velocities as music21's own MIDI export realises them, and
the first metronome mark's tempo. An ABC book (an ``Opus``) gives one work per tune.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from improv.errors import MIDIConversionError, one_line
from improv.music.notes import Note


def read_music21(path: str) -> list[tuple[str, list[Note], float | None, tuple[int, int] | None]]:
    """A score file music21 reads -> (suffix, notes, bpm, meter) per work ("#N" for a collection's
    Nth; meter: the first time signature as (numerator, denominator), None without one)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # music21 warns freely about what it guesses; not the user's business here
        try:
            from music21 import converter, stream
        except ImportError:
            raise MIDIConversionError("music21 is not installed: cannot read this score format") from None
        try:
            parsed = converter.parse(path, forceSource=True)  # forceSource: no pickles in music21's scratch folder
        except Exception as exc:  # noqa: BLE001 - music21's parsers raise anything on malformed input
            raise MIDIConversionError(f"music21 cannot read it ({one_line(exc)})") from None
        if isinstance(parsed, stream.Opus):
            scores = list(parsed.scores)
            width = len(str(len(scores)))
            return [(f"#{i + 1:0{width}d}", *_score_notes(s)) for i, s in enumerate(scores)]
        return [("", *_score_notes(parsed))]


def read_music21_work(path: str, suffix: str) -> tuple[list[Note], float | None, tuple[int, int] | None]:
    """One work of a file as ``read_music21`` names it ("" or "#N"): (notes, bpm, meter). An ABC
    book's tune is parsed alone (music21 orders a book's tunes by reference number, so the Nth
    number is the Nth work): 25 ms instead of the whole book's minute."""
    index = int(suffix[1:]) if suffix.startswith("#") else 0
    if index and path.lower().endswith(".abc"):
        with open(path, encoding="utf-8", errors="replace") as handle:
            numbers = sorted({int(x) for x in re.findall(r"(?m)^X:\s*(\d+)", handle.read())})
        if index <= len(numbers):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from music21 import converter, stream

                try:
                    score = converter.parse(path, number=numbers[index - 1], forceSource=True)
                except Exception:  # noqa: BLE001 - then the whole book, below
                    score = None
                if isinstance(score, stream.Score):
                    return _score_notes(score)
    works = {name: rest for name, *rest in read_music21(path)}
    if suffix not in works:
        raise MIDIConversionError(f"{path} has no work {suffix or '(the first)'}")
    notes, bpm, meter = works[suffix]
    return notes, bpm, meter


def notes_from_music21(score: Any) -> list[Note]:
    """The notes of a music21 score (or part), as ``read_music21`` reads them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _score_notes(score)[0]


def _score_notes(score: Any) -> tuple[list[Note], float | None, tuple[int, int] | None]:
    """Every part: ties joined, chords expanded (octaves kept), grace notes and percussion left out.

    Velocities are what music21's own MIDI export writes (``volume.realizeVolume`` per part:
    explicit velocities, dynamics marks, accents); a score without dynamics gets music21's
    default, 90. So a score and music21's MIDI rendering of it read the same.
    """
    from music21 import instrument, meter, tempo

    parts = list(score.parts) if hasattr(score, "parts") and len(score.parts) else [score]
    notes: list[Note] = []
    for part in parts:
        inst = part.getInstrument(returnDefault=False)
        if isinstance(inst, instrument.UnpitchedPercussion):
            continue
        notes.extend(_part_notes(part))
    mark = score.recurse().getElementsByClass(tempo.MetronomeMark).first()
    bpm = mark.getQuarterBPM() if mark is not None else None
    signature = score.recurse().getElementsByClass(meter.TimeSignature).first()
    bar = (int(signature.numerator), int(signature.denominator)) if signature is not None and signature.numerator else None
    return notes, (round(float(bpm), 3) if bpm else None), bar


def _part_notes(part: Any) -> list[Note]:
    """One part's notes with tied notes joined (what ``stripTies`` does, in one O(n) pass)."""
    from music21 import chord, note, volume

    flat = part.flatten()
    volume.realizeVolume(flat)
    out: list[list] = []  # [pitch, start, duration, velocity]
    open_ties: dict[int, list] = {}  # pitch -> the note a tie from it is still to reach
    for element in flat.notes:
        if element.duration.isGrace:
            continue  # no time of their own in the score: on the grid they would be false chord tones
        start = float(element.offset)
        length = float(element.quarterLength)
        if isinstance(element, note.Note):
            members = [(element, element)]
        elif isinstance(element, chord.Chord):  # PercussionChord and Unpitched are not Chord/Note
            members = [(n, n if n.hasVolumeInformation() else element) for n in element.notes]
        else:
            continue
        for member, loud in members:
            pitch = member.pitch.midi
            tie = member.tie.type if member.tie is not None else None
            held = open_ties.get(pitch)
            if tie in ("stop", "continue") and held is not None and abs(held[1] + held[2] - start) < 1e-6:
                held[2] += length  # the tied continuation lengthens the note it continues
                if tie == "stop":
                    del open_ties[pitch]
                continue
            new = [pitch, start, length, _velocity(loud.volume.cachedRealized)]
            out.append(new)
            if tie in ("start", "continue"):
                open_ties[pitch] = new
    return [Note(p, s, d, v) for p, s, d, v in out]


def _velocity(realized: float) -> int:
    return min(127, max(1, int(round(realized * 127))))
