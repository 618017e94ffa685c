"""One source file -> its works (notes, tempo, metre) -> token rows: the reading a parser worker does.

MIDI goes through ``music.midi`` (mido, ~30x faster than music21 on MIDI); music21's own formats
through ``music.scores``. Reading (slow, music21) and tokenizing (fast, numpy) are apart, so the
cache keeps the notes and a changed tokenizer setting never makes music21 parse a file again. A
file that cannot be read gives a ``FileResult`` with the reason (``skip``), never an exception;
with ``measure_recall`` the tokens also count how many notes survive the round trip notes ->
tokens -> MIDI -> notes.
"""

from __future__ import annotations

import collections
import dataclasses
import json
from dataclasses import dataclass, field

import numpy as np

from improv.errors import MIDIConversionError
from improv.music.midi import Track, midi_bytes, read_midi
from improv.music.notes import note_array
from improv.music.tokenizer import ENCODING_VERSION, Tokenizer

# Bump when a change in the readers changes the notes they produce: it invalidates every cache entry.
READER_VERSION = 2  # 2: the metre (first time signature) is kept


@dataclass
class Work:
    """One piece of music a file holds (an ABC book holds many)."""

    suffix: str  # "" for the only work of a file, "#N" for a book's Nth
    notes: np.ndarray  # ``music.notes.NOTE_DTYPE``, as read
    bpm: float | None  # the tempo at its first note (None: a score with no metronome mark)
    meter: tuple[int, int] | None  # its first time signature (numerator, denominator), if any


@dataclass
class Tokens:
    """The token rows of a file's works under one tokenizer (``recipe``), and round-trip counts."""

    recipe: str
    rows: list[np.ndarray]  # one (N, 4) array per work, BOS ... EOS
    kept: int | None = None  # round trip: notes kept, of total; None when not measured
    total: int | None = None


@dataclass
class FileResult:
    """What reading one file gave (and what the cache keeps of it)."""

    skip: str | None = None  # why the file gave no piece; None when it did
    works: list[Work] = field(default_factory=list)
    tokens: Tokens | None = None
    cacheable: bool = True  # timeouts and crashes are not: the next run tries again
    restart: bool = False  # the worker was interrupted mid-parse: replace it (library state may be broken)


def tokenizer_recipe(tokenizer: Tokenizer) -> str:
    """What makes token rows differ for the same notes: the tokenizer's settings and encoding."""
    return json.dumps({"settings": dataclasses.asdict(tokenizer.settings), "encoding": ENCODING_VERSION}, sort_keys=True)


def read_file(path: str, kind: str, data: bytes) -> FileResult:
    """One file's works (notes only); a file that cannot be read, or holds no notes, is a skip."""
    try:
        works = [w for w in read_works(path, kind, data) if len(w.notes)]
    except MIDIConversionError as exc:
        return FileResult(skip=str(exc))
    if not works:
        return FileResult(skip="no pitched notes (drums and unpitched percussion are left out)")
    return FileResult(works=works)


def read_works(path: str, kind: str, data: bytes) -> list[Work]:
    """Every work in a file: one for MIDI and most scores, many for an ABC book."""
    if kind == "midi":
        content = read_midi(data)
        return [Work("", note_array(content.notes), content.bpm, content.meter)]
    from improv.music.scores import read_music21  # music21: only for its own formats

    return [Work(suffix, note_array(notes), bpm, meter) for suffix, notes, bpm, meter in read_music21(path)]


def tokenize(works: list[Work], tokenizer: Tokenizer, measure_recall: bool) -> Tokens:
    """Token rows of each work (and, with ``measure_recall``, the round-trip counts)."""
    tokens = Tokens(tokenizer_recipe(tokenizer), [], 0 if measure_recall else None, 0 if measure_recall else None)
    for work in works:
        rows = tokenizer.encode(work.notes)
        tokens.rows.append(rows)
        if measure_recall:
            kept, total = roundtrip_counts(work.notes, rows, tokenizer)
            tokens.kept += kept
            tokens.total += total
    return tokens


def roundtrip_counts(notes: np.ndarray, rows: np.ndarray, tokenizer: Tokenizer) -> tuple[int, int]:
    """(kept, total): source notes whose (grid onset, pitch) come back from decode -> MIDI -> read.

    The reference is ``Tokenizer.grid_onsets`` (onsets on the grid, from the first note, long gaps
    shortened as ``encode`` shortens them); both sides are compared as multisets.
    """
    reference = collections.Counter(tokenizer.grid_onsets(notes))
    decoded = tokenizer.decode(rows)
    back = read_midi(midi_bytes([Track("roundtrip", decoded)], bpm=120.0)).notes
    survived = collections.Counter(tokenizer.grid_onsets(back))
    return sum((reference & survived).values()), sum(reference.values())
