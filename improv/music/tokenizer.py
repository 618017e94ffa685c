"""Notes <-> token rows: one fixed vocabulary, independent of the data. Pure.

One model step is one note event, a row of four small integers::

    [pitch, offset, duration, velocity]

* ``pitch``: the MIDI pitch 0..127 (octave kept, so chords keep their voicing), or one of the
  special tokens ``BOS`` (128, start of a piece) and ``EOS`` (129, end of a piece).
* ``offset``: time since the previous event's start, as an index into ``time_steps`` (0 = same
  onset, i.e. the next note of a chord).
* ``duration``: the note's length, an index into the same grid (never 0 for a note).
* ``velocity``: one of ``velocity_bins`` equal-width bins over 1..127.

The time grid holds every multiple of 1/steps_per_beat up to 2 beats (sixteenths, triplets and
their mixtures), multiples of 1/4 and 1/3 beat up to 8 beats, half beats up to 16 and whole beats up
to ``max_beats``; a longer gap is shortened to ``max_beats``. Special tokens carry 0 in the other
fields. Since every field has a fixed range, no input is ever unknown and transposition is a shift
of the pitch column.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import asdict
from typing import Any, Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from improv.errors import CheckpointError, ConfigError
from improv.music.notes import Note, fold_pitches, note_array
from improv.settings.load import section_from_dict
from improv.settings.sections import TokenizerSettings

# Column of each field in a token row.
PITCH, OFFSET, DURATION, VELOCITY = 0, 1, 2, 3
FIELDS = ("pitch", "offset", "duration", "velocity")

BOS = 128  # start of a piece
EOS = 129  # end of a piece
N_PITCH = 130

# Bump when the same notes and settings would encode differently (corpus caches are keyed on it).
ENCODING_VERSION = 3  # 3: an onset's notes lowest first after a coarse offset (encode is idempotent)

TOKEN_DTYPE = np.uint8  # every field fits in a byte with the default grid: 4 bytes per event


def time_grid(steps_per_beat: int, max_beats: float) -> list[int]:
    """The offset/duration classes, in grid steps (1 step = 1/steps_per_beat beat), ascending."""
    spb = steps_per_beat
    cap = int(round(max_beats * spb))
    steps = list(range(0, 2 * spb + 1))  # fine: every step up to 2 beats
    # Quarters and thirds of a beat up to 2 bars: a note after a long rest still lands on its beat.
    steps += [k for k in range(2 * spb + 1, 8 * spb + 1) if (4 * k) % spb == 0 or (3 * k) % spb == 0]
    steps += list(range(8 * spb + spb // 2, 16 * spb + 1, spb // 2))  # half beats up to 4 bars
    steps += list(range(16 * spb + spb, cap + 1, spb))  # whole beats up to the cap
    return [s for s in steps if s <= cap]


def round_half_down(x: float) -> int:
    """Nearest integer, ties to the lower one: the same rule ``quantize_time`` applies to classes."""
    return math.ceil(x - 0.5)


def velocity_table(bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(bin of each velocity 0..127, representative velocity of each bin)."""
    of_velocity = np.zeros(128, dtype=np.int64)
    for v in range(1, 128):
        of_velocity[v] = (v - 1) * bins // 127
    centres = np.array([int(round(np.flatnonzero(of_velocity[1:] == b).mean())) + 1 for b in range(bins)])
    return of_velocity, centres


class GridNotes(NamedTuple):
    """Notes on the grid, in token order (``Tokenizer.grid_notes``)."""

    steps: np.ndarray  # onset, in grid steps from the piece's start
    pitches: np.ndarray
    durations: np.ndarray  # beats, not yet quantised
    velocities: np.ndarray


def _canonical_chords(events: np.ndarray) -> np.ndarray:
    """Each onset's notes (a row with an offset, then the rows with offset 0) lowest first and each
    pitch once, the onset's offset on its first row: the order ``decode`` then ``encode`` gives.
    Only onsets out of that order are touched (they are rare: a coarse offset rounded past a note)."""
    if len(events) < 2:
        return events
    disorder = np.flatnonzero((events[1:, OFFSET] == 0) & (events[1:, PITCH] <= events[:-1, PITCH])) + 1
    if not len(disorder):
        return events
    starts = np.concatenate([[0], np.flatnonzero(events[1:, OFFSET] != 0) + 1])
    ends = np.append(starts[1:], len(events))
    pieces, at = [], 0
    for g in np.unique(np.searchsorted(starts, disorder, side="right") - 1):
        s, e = starts[g], ends[g]
        group = events[s:e]
        group = group[np.argsort(group[:, PITCH], kind="stable")]
        first = np.ones(len(group), dtype=bool)
        first[1:] = group[1:, PITCH] != group[:-1, PITCH]
        keep = np.flatnonzero(first)
        merged = group[keep].copy()
        merged[:, DURATION] = np.maximum.reduceat(group[:, DURATION], keep)
        merged[:, VELOCITY] = np.maximum.reduceat(group[:, VELOCITY], keep)
        merged[:, OFFSET] = 0
        merged[0, OFFSET] = events[s, OFFSET]
        pieces += [events[at:s], merged]
        at = e
    pieces.append(events[at:])
    return np.concatenate(pieces)


class Tokenizer:
    """Encodes notes as token rows and back. Immutable; build one from ``TokenizerSettings``."""

    def __init__(self, settings: TokenizerSettings | None = None) -> None:
        self.settings = settings or TokenizerSettings()
        self.steps_per_beat = self.settings.steps_per_beat
        self.time_steps: np.ndarray = np.array(time_grid(self.steps_per_beat, self.settings.max_beats), dtype=np.int64)
        self.time_values: np.ndarray = self.time_steps / self.steps_per_beat  # beats
        self._time_list = self.time_steps.tolist()
        self._time_mids = [(a + b) / 2 for a, b in zip(self._time_list, self._time_list[1:])]
        self._mids_array = np.array(self._time_mids)
        self._velocity_bin, self.velocity_values = velocity_table(self.settings.velocity_bins)
        self.sizes: tuple[int, int, int, int] = (N_PITCH, len(self.time_steps), len(self.time_steps), self.settings.velocity_bins)
        if max(self.sizes) > np.iinfo(TOKEN_DTYPE).max + 1:
            raise ConfigError(f"tokenizer settings give {max(self.sizes)} classes in one field; at most 256 fit")
        self.max_steps = int(self.time_steps[-1])

    # ---- one field at a time ---------------------------------------------------------------

    def quantize_time(self, beats: float, minimum: int = 0) -> int:
        """Nearest grid class to a time in beats (ties go to the shorter); never below ``minimum``."""
        steps = beats * self.steps_per_beat
        cls = bisect.bisect_left(self._time_mids, steps)
        return max(cls, minimum)

    def quantize_velocity(self, velocity: int) -> int:
        return int(self._velocity_bin[min(max(int(velocity), 1), 127)])

    @staticmethod
    def special(token: int) -> np.ndarray:
        """The row of a special token (BOS or EOS)."""
        return np.array([token, 0, 0, 0], dtype=TOKEN_DTYPE)

    # ---- whole pieces ----------------------------------------------------------------------

    def grid_notes(self, notes: Iterable[Note] | np.ndarray) -> GridNotes:
        """The notes on the grid, in token order: (onset step, pitch, duration in beats, velocity)
        arrays, sorted by step then pitch.

        Onsets are rounded to the grid *before* ordering, so the notes of a chord come out lowest
        first even when the source spread them over a few ticks, and two notes of one pitch that
        land on the same step (a doubling between parts or tracks) become one note with the longer
        duration and the louder velocity: one instrument cannot strike one key twice at once.
        """
        arr = note_array(notes)
        steps = np.ceil(arr["start"] * self.steps_per_beat - 0.5).astype(np.int64)  # round_half_down
        pitch = fold_pitches(arr["pitch"].astype(np.int64))
        order = np.lexsort((pitch, steps))
        steps, pitch = steps[order], pitch[order]
        duration, velocity = arr["duration"][order], arr["velocity"][order].astype(np.int64)
        if len(steps) > 1:
            first = np.ones(len(steps), dtype=bool)
            first[1:] = (steps[1:] != steps[:-1]) | (pitch[1:] != pitch[:-1])
            at = np.flatnonzero(first)
            duration, velocity = np.maximum.reduceat(duration, at), np.maximum.reduceat(velocity, at)
            steps, pitch = steps[at], pitch[at]
        return GridNotes(steps, pitch, duration, velocity)

    def _walk(self, steps: Sequence[int]) -> Iterator[tuple[int, int]]:
        """(offset class, steps a long gap lost) of each grid onset: the one timing rule.

        Offsets are quantised with error feedback: each offset is measured from where the decoded
        previous event lies, not where the source had it, so rounding never accumulates; notes of
        one onset always stay one chord. A gap longer than ``max_beats`` becomes the longest class,
        and timing restarts from that note (the steps it lost are reported).
        """
        decoded: int | None = None  # where the previous event lies after decoding, in source steps
        previous: int | None = None  # the previous event's source step
        last_class = len(self._time_list) - 1
        for step in steps:
            lost = 0
            if decoded is None:
                offset_cls = 0  # leading silence is dropped
                decoded = step
            elif step - decoded > self.max_steps:
                offset_cls, lost = last_class, step - decoded - self.max_steps
                decoded = step
            elif step == previous:
                offset_cls = 0  # the same chord, even where the grid rounded the chord's onset
            else:
                # A coarse class may round past the next onset: that note then joins this chord.
                offset_cls = bisect.bisect_left(self._time_mids, step - decoded)
                decoded += self._time_list[offset_cls]
            previous = step
            yield offset_cls, lost

    def encode(self, notes: Iterable[Note] | np.ndarray, bos: bool = True, eos: bool = True) -> np.ndarray:
        """Notes of one piece -> token rows of shape (N, 4), timed as ``_walk`` describes.

        Every decoded onset's notes come out lowest first, each pitch once (the longer and louder
        where two meet): so ``encode(decode(rows)) == rows`` for any rows ``encode`` made, even where
        a coarse offset moved one onset onto the next."""
        grid = self.grid_notes(notes)
        offsets = np.fromiter((cls for cls, _ in self._walk(grid.steps.tolist())), dtype=np.int64, count=len(grid.steps))
        durations = np.maximum(np.searchsorted(self._mids_array, grid.durations * self.steps_per_beat, side="left"), 1)
        velocities = self._velocity_bin[np.clip(grid.velocities, 1, 127)]
        events = np.stack([grid.pitches, offsets, durations, velocities], axis=1)
        events = _canonical_chords(events)
        rows = np.zeros((len(events) + bos + eos, 4), dtype=TOKEN_DTYPE)
        if bos:
            rows[0, PITCH] = BOS
        rows[int(bos) : int(bos) + len(events)] = events
        if eos:
            rows[-1, PITCH] = EOS
        return rows

    def decode(self, rows: np.ndarray, start: float = 0.0) -> list[Note]:
        """Token rows -> notes with absolute starts in beats (special tokens are skipped)."""
        rows = np.asarray(rows)
        notes: list[Note] = []
        step = 0
        for pitch, offset, duration, velocity in rows.tolist():
            if pitch >= BOS:
                continue
            step += self._time_list[offset]
            notes.append(
                Note(
                    pitch,
                    start + step / self.steps_per_beat,
                    self._time_list[max(duration, 1)] / self.steps_per_beat,
                    int(self.velocity_values[velocity]),
                )
            )
        return notes

    def transpose(self, rows: np.ndarray, semitones: int) -> np.ndarray:
        """Shift every note's pitch; pitches pushed out of 0..127 are folded back by octaves."""
        out = np.array(rows, copy=True)
        notes = out[:, PITCH] < BOS
        pitch = out[notes, PITCH].astype(np.int64) + semitones
        pitch = np.where(pitch < 0, pitch + 12 * ((-pitch + 11) // 12), pitch)
        pitch = np.where(pitch > 127, pitch - 12 * ((pitch - 116) // 12), pitch)
        out[notes, PITCH] = pitch
        return out

    def grid_onsets(self, notes: Iterable[Note] | np.ndarray) -> list[tuple[int, int]]:
        """(grid step, pitch) of each source note as the tokens should keep it.

        The reference for round-trip recall: onsets rounded to the grid, measured from the first
        note, doublings merged and long gaps shortened by exactly what ``encode`` cut from them.
        Coarse rounding of an onset (beyond 2 beats the grid is coarser) is *not* applied: that
        is a loss the recall counts.
        """
        grid = self.grid_notes(notes)
        steps = grid.steps.tolist()
        out: list[tuple[int, int]] = []
        cut = steps[0] if steps else 0
        for step, pitch, (_, lost) in zip(steps, grid.pitches.tolist(), self._walk(steps)):
            cut += lost
            out.append((step - cut, pitch))
        return out

    # ---- persistence -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild this tokenizer, with the vocabulary spelled out."""
        return {
            "settings": asdict(self.settings),
            "fields": list(FIELDS),
            "sizes": list(self.sizes),
            "specials": {"bos": BOS, "eos": EOS},
            "time_steps": self._time_list,
            "velocity_values": self.velocity_values.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Tokenizer":
        """Rebuild from ``to_dict``; a vocabulary this code would not reproduce is an error."""
        try:
            settings = section_from_dict(TokenizerSettings, dict(data["settings"]), "tokenizer")
        except (KeyError, TypeError, ConfigError) as exc:
            raise CheckpointError(f"checkpoint holds no usable tokenizer settings ({exc})") from None
        tok = cls(settings)
        if tok.to_dict() != data:
            raise CheckpointError("checkpoint's token vocabulary differs from this version of improv's")
        return tok

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.settings == other.settings

    def __hash__(self) -> int:
        return hash(self.settings)

    def __repr__(self) -> str:
        return f"Tokenizer(sizes={self.sizes}, settings={self.settings})"
