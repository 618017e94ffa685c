"""Offline generation, the pure core: token rows in, token rows out, and notes laid out in beats.

* ``sample_rows(model, rng, params, length, prime_rows)``: prime the numpy step model (BOS, then a
  prompt), then draw one event at a time with temperature / top-k / top-p until EOS or ``length``
  events. No torch: the same numpy path as real time.
* ``compose(...)``: notes in (the prompt), notes out: folds and tokenises the prompt, samples, and
  lays the new events out in beats after the prompt (or from the first bar).

Why the seeds failed and what this does instead: they decoded with argmax (one repeated note) and
wrote every note half a beat after the last with one length; here each event's offset, pitch,
duration and velocity are *sampled* from the model's four heads, so rhythm, note lengths, chords
(offset 0 = same onset, voicing kept) and dynamics all come from the model. A seeded
``numpy.random.Generator`` makes the result a function of (model, prompt, options, seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from improv.model.sampling import SamplingParams
from improv.model.step_model import StepModel
from improv.music.notes import BEATS_PER_BAR, Note, fold_pitch, playable
from improv.music.tokenizer import (
    BOS,
    EOS,
    N_PITCH,
    PITCH,
    TOKEN_DTYPE,
    round_half_down,
)

# Where prompt notes are folded to: the piano keyboard (A0..C8). Notes outside it are rare in any
# corpus, so the model has barely seen them and a prompt that uses them would prime it with
# untrained embeddings.
DEFAULT_PITCH_RANGE = (21, 108)




def generation_pitch_mask(allow_end: bool = True) -> np.ndarray:
    """Pitch classes the sampler may draw: every note, EOS if ``allow_end``, never BOS (it only
    starts a piece)."""
    mask = np.ones(N_PITCH, dtype=bool)
    mask[BOS] = False
    mask[EOS] = allow_end
    return mask


@dataclass(frozen=True)
class Sampled:
    rows: np.ndarray  # (n, 4) uint8 note events, no BOS/EOS
    ended: bool  # the model chose to end the piece (EOS) before ``length``


def sample_rows(model: StepModel, rng: np.random.Generator, params: SamplingParams, length: int, prime_rows: np.ndarray | None = None, allow_end: bool = True, min_events: int = 0) -> Sampled:
    """Up to ``length`` events after ``prime_rows`` (BOS first; BOS alone when None); the model
    may end the piece only after ``min_events`` of them, and never when not ``allow_end``."""
    prime = model.tokenizer.special(BOS)[None] if prime_rows is None else np.asarray(prime_rows)
    state = model.prime(prime)
    no_end, may_end = generation_pitch_mask(False), generation_pitch_mask(allow_end)
    out = np.zeros((length, 4), dtype=TOKEN_DTYPE)
    for i in range(length):
        row = model.sample_event(state, rng, params, no_end if i < min_events else may_end)
        if row[PITCH] == EOS:
            return Sampled(out[:i], True)
        out[i] = row
        if i + 1 < length:  # the last event's state is never needed
            state = model.step(state, row)
    return Sampled(out, False)


def fold_notes(notes: Sequence[Note], pitch_range: tuple[int, int]) -> list[Note]:
    """Every note moved by whole octaves into ``pitch_range`` (which must span an octave)."""
    low, high = pitch_range
    return [Note(fold_pitch(n.pitch, low, high), n.start, n.duration, n.velocity) for n in notes]


@dataclass(frozen=True)
class Composition:
    prompt: list[Note]  # the prompt as given (empty without one)
    notes: list[Note]  # the generated notes, in beats (after the prompt, or from bar 1; see compose)
    events: int  # generated events
    ended: bool  # stopped at the model's end-of-piece token


def compose(model: StepModel, rng: np.random.Generator, params: SamplingParams, length: int, prompt: Sequence[Note] = (), continue_prompt: bool = True, pitch_range: tuple[int, int] = DEFAULT_PITCH_RANGE, min_length: int = -1) -> Composition:
    """Generate ``length`` events, primed with ``prompt``; without a prompt the model may end the
    piece after ``min_length`` events (-1: never, the whole length).

    Why the whole length by default: `--length 300` that stops after 21 events (the folk voice
    ends a tune where a tune ends) is not what was asked for; ``min_length`` 0 lets it end a piece.

    Why no end with a prompt: the user asked for a continuation, and a short phrase often looks
    like a whole piece to the model (measured: a Bach model ended 2 of 3 music21 test phrases at
    once), so the end-of-piece token is masked out then.

    With ``continue_prompt`` the new notes start where the prompt's last onset lies (on the grid),
    as a continuation heard with the prompt; otherwise they are moved back by whole bars so the
    first note falls in the first bar, keeping its place in the bar.
    """
    tok = model.tokenizer
    prompt = list(prompt)
    prime_rows = tok.encode(fold_notes(prompt, pitch_range), bos=True, eos=False) if prompt else None
    # The first sampled offset counts from the last event primed: the prompt's last onset.
    start = round_half_down(max(n.start for n in prompt) * tok.steps_per_beat) / tok.steps_per_beat if prompt else 0.0
    floor = length if min_length < 0 else min_length
    sampled = sample_rows(model, rng, params, length, prime_rows, allow_end=not prompt, min_events=floor)
    notes = playable(tok.decode(sampled.rows, start=start))
    if notes and not continue_prompt:
        shift = math.floor(notes[0].start / BEATS_PER_BAR) * BEATS_PER_BAR
        notes = [Note(n.pitch, n.start - shift, n.duration, n.velocity) for n in notes]
    return Composition(prompt, notes, len(sampled.rows), sampled.ended)
