"""How an answer's next event is bent away from what the voice alone would play: a ``Guide`` is
called by ``StepModel.sample_event`` once per head (offset, pitch, duration, velocity) with the
fields already drawn, and returns the logits and mask to sample from. The musical rules it applies
are ``shaping``'s; this module decides which apply where in an answer."""

from __future__ import annotations

from typing import Callable

import numpy as np

from improv.music.tokenizer import DURATION, OFFSET, PITCH
from improv.realtime.answer import Answer
from improv.realtime.shaping import (
    CADENCE_NATS,
    ChordTop,
    keep_below,
    motif_pitch,
    nearest_allowed,
    on_beat,
    tonic_triad,
)

Guide = Callable[[int, np.ndarray, np.ndarray, "np.ndarray | None"], "tuple[np.ndarray, np.ndarray | None]"]


def answer_guide(answer: Answer, values: np.ndarray, cadence: bool, opening: bool = True) -> Guide:
    """The answer's bends on each head for its next event, given the fields already drawn:
    texture (no chord beyond the call's, each key once per onset), register, the motif
    (imitation), the cadence (``cadence``: the answer is near its end) and, with ``opening``,
    a first note from the tonic triad. ``values``: the tokenizer's time values (beats)."""
    first = answer.sampled == 0
    # Every key of the range already struck at this onset: the next event must move on (a hard
    # constraint, held here so that the pitch head never has to drop the range).
    no_key_left = bool(answer.onset_pitches) and int(answer.mask.sum()) <= sum(bool(answer.mask[p]) for p in answer.onset_pitches)
    chord_full = len(answer.onset_pitches) >= max(answer.max_voices, 1)
    motif = answer.motif if answer.motif is not None and answer.onsets < answer.motif.span else None
    # A chordal answer takes up the motif in its chords' top notes; a chord is drawn lowest first
    # (token order), so the onset under way is onsets - 1 and its interval starts at line_before.
    chordal = answer.motif is not None and answer.max_voices != 1 and not first
    top = hold = None
    if chordal and 0 < answer.onsets <= answer.motif.span:
        wanted = motif_pitch(answer.motif, answer.onsets - 1, answer.line_before)
        if wanted is not None:
            top = ChordTop(nearest_allowed(wanted, answer.mask), answer.onset_pitches, answer.max_voices, answer.motif.strength)
        else:
            hold = answer.held_top

    def guide(field: int, row: np.ndarray, logits: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        new_onset = first or int(row[OFFSET]) > 0
        if field == OFFSET and not first:
            if answer.max_voices == 1 or (answer.max_voices and chord_full) or no_key_left:
                no_chord = np.ones(len(logits), dtype=bool)
                no_chord[0] = False  # offset 0 joins the onset: no room for another note there
                mask = no_chord if mask is None else mask & no_chord
            if top is not None:
                logits = top.offset_bias(logits)
            if motif is not None and motif.offsets[answer.onsets] > 0 and (top is None or top.reached):
                logits = logits.copy()
                logits[motif.offsets[answer.onsets]] += motif.strength
            if cadence:  # onsets that land on a beat
                landing = answer.beats + values[: len(logits)]
                logits = logits + CADENCE_NATS * (np.abs(landing - np.round(landing)) < 1e-6)
        elif field == PITCH:
            if not new_onset and answer.onset_pitches:
                fresh = np.ones(len(logits), dtype=bool)
                fresh[list(answer.onset_pitches)] = False  # one instrument: each key once per onset
                if mask is None or (mask & fresh).any():  # else the range holds (the offset head
                    mask = fresh if mask is None else mask & fresh  # left no room for this)
            if answer.pitch_bias is not None:
                logits = logits + answer.pitch_bias
            if motif is not None and new_onset and answer.max_voices == 1:
                wanted = motif_pitch(motif, answer.onsets, answer.line_pitch)
                wanted = None if wanted is None else nearest_allowed(wanted, answer.mask)
                if wanted is not None and 0 <= wanted < 128:
                    logits = logits.copy()
                    logits[wanted] += motif.strength
            elif answer.motif is not None and answer.max_voices != 1:
                if new_onset and motif is not None:  # a chord's lowest note: room below the top
                    wanted = motif_pitch(motif, answer.onsets, answer.line_pitch)
                    if wanted is not None:
                        logits = ChordTop(nearest_allowed(wanted, answer.mask), set(), answer.max_voices, motif.strength).pitch_bias(logits)
                    else:
                        landing = 0.0 if first else answer.beats + float(values[int(row[OFFSET])])
                        held = max((p for end, p in answer.sounding if end > landing + 1e-6), default=-1)
                        logits = keep_below(logits, held, motif.strength)
                elif not new_onset and top is not None:
                    logits = top.pitch_bias(logits)
                elif not new_onset and hold is not None:
                    logits = keep_below(logits, hold, answer.motif.strength)
            if cadence and answer.tonality is not None:
                landing = 0.0 if first else answer.beats + float(values[int(row[OFFSET])])
                if on_beat(landing):
                    logits = logits + CADENCE_NATS * tonic_triad(answer.tonality)
            elif answer.tonality is not None and opening and (first or (answer.onsets == 1 and not new_onset)):
                # it begins on the tonic's harmony (every note of its first onset)
                logits = logits + CADENCE_NATS * tonic_triad(answer.tonality)
        elif field == DURATION:
            if motif is not None and new_onset:
                logits = logits.copy()
                logits[motif.durations[answer.onsets]] += motif.strength
            if cadence:
                logits = logits + CADENCE_NATS * (values[: len(logits)] >= 1.0)
        return logits, mask

    return guide
