"""Notes -> MusicXML (sheet music) through music21: one part per track, chords where notes start
together with the same length, ties across bar lines. music21 is imported here only, when a score
is written. Ids and the encoding date are fixed, so the same notes write the same file.
"""

from __future__ import annotations

import re
from typing import Sequence

from improv.music.midi import Track
from improv.music.notes import BEATS_PER_BAR, Note


def musicxml_bytes(tracks: Sequence[Track], bpm: float) -> bytes:
    """Sheet music through music21 (imported here: it is slow to import and only this needs it).

    Notes that start together with the same length become one chord (voicing kept); music21 ties
    notes across bar lines and splits lengths no single note value can show.
    """
    from music21 import chord, instrument, meter, stream, tempo
    from music21 import note as m21note
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    score = stream.Score()
    for index, track in enumerate(tracks):
        part = stream.Part()
        part.partName = track.name
        # Fixed ids (music21 makes up random ones), so the same seed writes the same file.
        part.id = f"P{index + 1}"
        instr = instrument.instrumentFromMidiProgram(track.program)
        instr.partId, instr.instrumentId = part.id, f"P{index + 1}-I1"
        part.insert(0, instr)
        part.insert(0, meter.TimeSignature(f"{BEATS_PER_BAR}/4"))
        if index == 0:
            part.insert(0, tempo.MetronomeMark(number=round(bpm, 2)))
        groups: dict[tuple[float, float], list[Note]] = {}
        for n in track.notes:
            groups.setdefault((n.start, n.duration), []).append(n)
        for (start, duration), group in sorted(groups.items()):
            if len(group) == 1:
                element = m21note.Note(group[0].pitch)
            else:
                element = chord.Chord(sorted(n.pitch for n in group))
            element.quarterLength = duration
            element.volume.velocity = max(n.velocity for n in group)
            part.insert(start, element)
        score.insert(0, part)
    xml = GeneralObjectExporter(score).parse()
    return re.sub(rb"[ \t]*<encoding-date>[^<]*</encoding-date>\r?\n?", b"", xml)  # optional; today's date would change the bytes
