"""Texture: how many notes sound together. Pure, on token rows.

A corpus's texture is what its voice will play (a single line, chords, interleaved lines); a
call's texture is what the answer follows (a line answers a line). Both are read from the same
figure: the mean number of notes per onset (an onset = an event with a nonzero offset, or the
first event, and the notes at offset 0 after it).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from improv.music.tokenizer import BOS, OFFSET, PITCH

# Where the labels change, in mean notes per onset: folk tunes are ~1.0, Renaissance polyphony
# (lines that seldom strike together) ~1.5-2, four-part chorales ~3.
SINGLE_LINE_MAX = 1.15
CHORDAL_MIN = 2.5


def onset_sizes(rows: np.ndarray) -> np.ndarray:
    """Notes in each onset of a piece's token rows (special tokens left out)."""
    rows = np.asarray(rows)
    notes = rows[rows[:, PITCH] < BOS]
    if len(notes) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(notes[:, OFFSET] != 0)
    starts = np.concatenate([[0], starts[starts > 0]])
    return np.diff(np.append(starts, len(notes)))


def texture(pieces: Sequence[np.ndarray]) -> dict[str, float | str]:
    """The texture of a set of pieces: notes per onset, the share of single-note onsets, the
    median pitch, and a label (single line, polyphonic, chordal)."""
    sizes = np.concatenate([onset_sizes(rows) for rows in pieces] or [np.zeros(0, np.int64)])
    pitches = np.concatenate([np.asarray(r)[np.asarray(r)[:, PITCH] < BOS, PITCH] for r in pieces] or [np.zeros(0)])
    per_onset = float(sizes.mean()) if len(sizes) else 0.0
    return {
        "notes_per_onset": round(per_onset, 3),
        "single_note_onsets": round(float((sizes == 1).mean()), 3) if len(sizes) else 0.0,
        "median_pitch": float(np.median(pitches)) if len(pitches) else 60.0,
        "label": label(per_onset),
    }


def label(notes_per_onset: float) -> str:
    if notes_per_onset <= SINGLE_LINE_MAX:
        return "single line"
    if notes_per_onset >= CHORDAL_MIN:
        return "chordal"
    return "polyphonic"
