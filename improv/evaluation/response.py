"""How an answer takes up its call: the figures of `improv eval --duet`. Pure functions on notes.

A phrase is a ``NOTE_DTYPE`` array, its starts in beats (quarter notes) from its first bar line.
Times are put on the token grid first (``steps_per_beat`` steps a beat, 12 by default), so float
noise of a played answer never splits an onset. An *onset* is one grid step where notes start (a
chord is one onset).

Per (call, answer):

* rhythm 3-grams: the inter-onset intervals between the answer's consecutive onsets (grid steps),
  taken three at a time; ``rhythm_uptake`` = the share of the answer's 3-grams (each occurrence
  counted) that occur anywhere among the call's. Undefined for an answer of fewer than 4 onsets.
* motif 3-grams: the *top line* (at each onset the highest note sounding, struck there or held:
  the skyline, so an inner part moving under a held melody note is not the melody), its melodic
  intervals in signed semitones, three at a time (four notes); ``motif_uptake`` = the same share.
  Intervals, not pitches: a motif moved to another degree is taken up.
* key: ``music.keys.estimate_phrase_key`` of each phrase (its pitches, starts, durations, the
  metre's beat and bar); the answer agrees when tonic and mode are the call's.
* register gap: |median pitch of the call - median pitch of the answer|, semitones.
* notes per onset: notes / onsets of a phrase (1 = a single line, 4 = four-part chords).
* passing: the share of a phrase's onsets that strike one note while notes struck before still
  sound (a part moving alone under held ones, as a chorale's inner part does in passing).
* echo: the answer's top line opens with the call's first ``ECHO_NOTES`` notes at pitch;
  transposed echo: with their intervals, at any pitch (the call moved a fifth up is still it).
* density kept: the answer's notes per beat are within 0.5x-2x the call's (both over the
  phrase's span, so a count of notes).
* cadence: the answer ends as a phrase does: its last onset lies on a metric beat (a whole number
  of the metre's beats from the bar line) and every note struck there is a tone of the tonic
  triad of the *call's* key (root, third, fifth).

Over a system's answers (``summarize``): the mean uptake over the answers where it is defined, the
share of answers in the call's key, the median register gap, the mean notes per onset of answers
and of their calls, the share of answers ending on a cadence. An empty answer counts as not in
the key and no cadence, and has no register or uptake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from improv.music.keys import estimate_phrase_key, tonic_triad_pitch_classes

N = 3  # n-gram length

FIGURES = ("rhythm_uptake", "motif_uptake", "key_agreement", "register_gap", "polyphony", "cadence_rate", "echo_rate", "transposed_echo_rate", "density_kept")
ECHO_NOTES = 4  # an answer whose top line opens with the call's first four notes, at pitch, echoes it


def onset_steps(notes: np.ndarray, steps_per_beat: int) -> np.ndarray:
    """Each note's start on the grid (whole steps)."""
    return np.round(np.asarray(notes["start"], dtype=np.float64) * steps_per_beat).astype(np.int64)


def iois(notes: np.ndarray, steps_per_beat: int) -> np.ndarray:
    """Steps between consecutive distinct onsets."""
    return np.diff(np.unique(onset_steps(notes, steps_per_beat)))


def top_line(notes: np.ndarray, steps_per_beat: int) -> np.ndarray:
    """The melody on top (the skyline): at each onset the highest note sounding, struck there or
    held from before, each note once; in time order. A part moving under a held top note (a
    chorale's alto under the soprano's half note) is not the top line."""
    if len(notes) == 0:
        return np.zeros(0, dtype=np.int64)
    steps = onset_steps(notes, steps_per_beat)
    ends = np.round((notes["start"] + notes["duration"]) * steps_per_beat).astype(np.int64)
    pitch = np.asarray(notes["pitch"], dtype=np.int64)
    line, last = [], -1
    for at in np.unique(steps):
        sounding = np.flatnonzero(((steps <= at) & (ends > at)) | (steps == at))
        top = int(sounding[np.lexsort((steps[sounding], pitch[sounding]))[-1]])  # highest, then latest
        if top != last:
            line.append(pitch[top])
            last = top
    return np.array(line, dtype=np.int64)


def passing_share(notes: np.ndarray, steps_per_beat: int) -> float | None:
    """The share of the phrase's onsets that strike one note while notes struck before still
    sound (None for no note)."""
    if len(notes) == 0:
        return None
    steps = onset_steps(notes, steps_per_beat)
    ends = np.round((notes["start"] + notes["duration"]) * steps_per_beat).astype(np.int64)
    return float(np.mean([np.count_nonzero(steps == at) == 1 and bool(np.any((steps < at) & (ends > at))) for at in np.unique(steps)]))


def ngrams(values: Sequence[int] | np.ndarray, n: int = N) -> list[tuple[int, ...]]:
    v = [int(x) for x in values]
    return [tuple(v[i : i + n]) for i in range(len(v) - n + 1)]


def uptake(call_values: Sequence[int] | np.ndarray, answer_values: Sequence[int] | np.ndarray, n: int = N) -> float | None:
    """Share of the answer's n-grams (with repeats) found among the call's; None without any."""
    answer = ngrams(answer_values, n)
    if not answer:
        return None
    found = set(ngrams(call_values, n))
    return sum(g in found for g in answer) / len(answer)


def rhythm_uptake(call: np.ndarray, answer: np.ndarray, steps_per_beat: int) -> float | None:
    return uptake(iois(call, steps_per_beat), iois(answer, steps_per_beat))


def motif_uptake(call: np.ndarray, answer: np.ndarray, steps_per_beat: int) -> float | None:
    return uptake(np.diff(top_line(call, steps_per_beat)), np.diff(top_line(answer, steps_per_beat)))


def phrase_key(notes: np.ndarray, beat: float, bar: float) -> tuple[int, bool] | None:
    """(tonic, minor) of a phrase, None when it is empty."""
    if len(notes) == 0:
        return None
    return estimate_phrase_key(notes["pitch"], notes["start"], notes["duration"], beat=beat, bar=bar)


def register_gap(call: np.ndarray, answer: np.ndarray) -> float | None:
    if len(call) == 0 or len(answer) == 0:
        return None
    return float(abs(np.median(call["pitch"].astype(float)) - np.median(answer["pitch"].astype(float))))


def notes_per_onset(notes: np.ndarray, steps_per_beat: int) -> float | None:
    if len(notes) == 0:
        return None
    return len(notes) / len(np.unique(onset_steps(notes, steps_per_beat)))


def ends_on_cadence(answer: np.ndarray, key: tuple[int, bool] | None, beat: float, steps_per_beat: int) -> bool:
    """The last onset on a metric beat, every note there a tonic-triad tone of ``key``."""
    if len(answer) == 0 or key is None:
        return False
    steps = onset_steps(answer, steps_per_beat)
    last = steps.max()
    beat_steps = max(int(round(beat * steps_per_beat)), 1)
    if last % beat_steps:
        return False
    pcs = {int(p) % 12 for p in answer["pitch"][steps == last]}
    return pcs <= tonic_triad_pitch_classes(*key)


@dataclass
class Turn:
    """One call and one answer to it (real or generated), for ``summarize``."""

    call: np.ndarray
    answer: np.ndarray
    beat: float  # the metre's beat, in quarter-note beats
    bar: float  # beats in a bar
    call_key: tuple[int, bool] | None = None  # filled by ``summarize`` when None
    index: int = 0  # which call (the listener test folds by call)


def _mean(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


def summarize(exchanges: Sequence[Turn], steps_per_beat: int) -> dict[str, float | int | None]:
    """The six figures (and a few counts) over one system's answers; see the module doc."""
    rhythm, motif, agree, gaps, poly, call_poly, cadence, echo, moved, dense = [], [], [], [], [], [], [], [], [], []
    passing, call_passing = [], []
    empty = 0
    for x in exchanges:
        key = x.call_key if x.call_key is not None else phrase_key(x.call, x.beat, x.bar)
        empty += len(x.answer) == 0
        rhythm.append(rhythm_uptake(x.call, x.answer, steps_per_beat))
        motif.append(motif_uptake(x.call, x.answer, steps_per_beat))
        agree.append(float(key is not None and phrase_key(x.answer, x.beat, x.bar) == key))
        gaps.append(register_gap(x.call, x.answer))
        poly.append(notes_per_onset(x.answer, steps_per_beat))
        call_poly.append(notes_per_onset(x.call, steps_per_beat))
        passing.append(passing_share(x.answer, steps_per_beat))
        call_passing.append(passing_share(x.call, steps_per_beat))
        cadence.append(float(ends_on_cadence(x.answer, key, x.beat, steps_per_beat)))
        opening = top_line(x.call, steps_per_beat)[:ECHO_NOTES]
        answer_opening = top_line(x.answer, steps_per_beat)[:ECHO_NOTES]
        echo.append(float(len(opening) == ECHO_NOTES and np.array_equal(answer_opening, opening)))
        moved.append(float(len(opening) == ECHO_NOTES and len(answer_opening) == ECHO_NOTES and np.array_equal(np.diff(answer_opening), np.diff(opening))))
        dense.append(float(len(x.call) > 0 and 0.5 <= len(x.answer) / len(x.call) <= 2.0))
    known_gaps = [g for g in gaps if g is not None]
    return {
        "rhythm_uptake": _mean(rhythm),
        "motif_uptake": _mean(motif),
        "key_agreement": _mean(agree),
        "register_gap": float(np.median(known_gaps)) if known_gaps else None,
        "polyphony": _mean(poly),
        "call_polyphony": _mean(call_poly),
        "passing": _mean(passing),
        "call_passing": _mean(call_passing),
        "cadence_rate": _mean(cadence),
        "echo_rate": _mean(echo),
        "transposed_echo_rate": _mean(moved),
        "density_kept": _mean(dense),
        "answers": len(exchanges),
        "empty_answers": empty,
        "answer_notes": float(np.mean([len(x.answer) for x in exchanges])) if exchanges else 0.0,
    }
