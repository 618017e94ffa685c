"""One source file -> the token rows of each piece in it: the reading a parser worker does.

MIDI goes through ``midi_io.read_midi`` (mido, ~30x faster than music21 on MIDI); music21's own
formats through ``score_reader``. A file that cannot be read gives a ``FileResult`` with the reason
(``skip``), never an exception; with ``measure_recall`` it also counts how many notes survive the
round trip notes -> tokens -> MIDI -> notes.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from improv.errors import MIDIConversionError
from improv.music.notes import Note
from improv.music.midi import Track, midi_bytes, read_midi
from improv.music.scores import read_music21
from improv.music.tokenizer import Tokenizer

# Bump when a change in the readers changes the notes they produce: it invalidates every cache entry.
READER_VERSION = 1


@dataclass
class FileResult:
    """What reading one file gave (and what the cache keeps of it)."""

    skip: str | None = None  # why the file gave no piece; None when it did
    pieces: list[tuple[str, np.ndarray, float | None]] = field(default_factory=list)  # (suffix, rows, bpm)
    kept: int | None = None  # round trip: notes kept, of total; None when not measured
    total: int | None = None
    cacheable: bool = True  # timeouts and crashes are not: the next run tries again
    restart: bool = False  # the worker was interrupted mid-parse: replace it (library state may be broken)


def parse_file(path: str, kind: str, data: bytes, tokenizer: Tokenizer, measure_recall: bool) -> FileResult:
    """One file -> token rows of each piece in it (and round-trip counts); errors become a skip."""
    try:
        works = read_works(path, kind, data)
    except MIDIConversionError as exc:
        return FileResult(skip=str(exc))
    result = FileResult(kept=0 if measure_recall else None, total=0 if measure_recall else None)
    for suffix, notes, bpm in works:
        if not notes:
            continue
        rows = tokenizer.encode(notes)
        result.pieces.append((suffix, rows, bpm))
        if measure_recall:
            kept, total = roundtrip_counts(notes, rows, tokenizer)
            result.kept += kept
            result.total += total
    if not result.pieces:
        return FileResult(skip="no pitched notes (drums and unpitched percussion are left out)")
    return result


def read_works(path: str, kind: str, data: bytes) -> list[tuple[str, list[Note], float | None]]:
    """(suffix, notes, bpm) of each work in a file: one for MIDI and scores, many for an ABC book."""
    if kind == "midi":
        content = read_midi(data)
        return [("", content.notes, content.bpm)]
    return read_music21(path)


def roundtrip_counts(notes: Sequence[Note], rows: np.ndarray, tokenizer: Tokenizer) -> tuple[int, int]:
    """(kept, total): source notes whose (grid onset, pitch) come back from decode -> MIDI -> read.

    The reference is ``Tokenizer.grid_onsets`` (onsets on the grid, from the first note, long gaps
    shortened as ``encode`` shortens them); both sides are compared as multisets.
    """
    reference = collections.Counter(tokenizer.grid_onsets(notes))
    decoded = tokenizer.decode(rows)
    back = read_midi(midi_bytes([Track("roundtrip", decoded)], bpm=120.0)).notes
    survived = collections.Counter(tokenizer.grid_onsets(back))
    return sum((reference & survived).values()), sum(reference.values())
