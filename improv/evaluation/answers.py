"""Answers to a call, four ways, and the real answer's likelihood after the call: the systems
`improv eval --duet` compares. Pure: a model, a call, a seed in; notes or numbers out.

* ``engine_answer`` — improv itself: the call played into a real ``Engine`` (its settings as the
  user has them, the piece's tempo) as note_on/note_off messages in simulated time, driven as the
  serve loop drives it (``evaluation.drive``: every message at its time, ``due`` at every deadline, the model
  work done in full between them), and the answer's notes read back from what it sends.
* ``free_answer`` — the same voice, not listening: sampled from a fresh state (BOS, then events).
* ``markov_answer`` — an order-k Markov continuator primed with the call (the Continuator's
  approach): each event's fields drawn in head order from ``MarkovModel.field_probs`` given the
  session so far.
* ``answer_nll`` / ``markov_answer_nll`` — the real answer's negative log-likelihood, per field,
  after BOS and the call (as an engine hears it from a session's start) and from a fresh state.

Generated answers are as long as a side of the pair (``span`` beats: the next event starting at or
after it ends the answer, the engine's rule for an answer in beats), and their notes are returned as
``NOTE_DTYPE`` arrays with starts in beats from the answer's bar line (the free and Markov answers
start on it; the engine's start where its start rule puts them).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Sequence

import mido
import numpy as np

from improv.evaluation.baselines import MarkovModel
from improv.evaluation.drive import drive
from improv.generation.compose import generation_pitch_mask
from improv.model.sampling import SamplingParams, sample
from improv.model.step_model import HEAD_ORDER
from improv.music.notes import Note, note_array, notes_of, playable
from improv.music.tokenizer import (
    BOS,
    DURATION,
    OFFSET,
    PITCH,
    TOKEN_DTYPE,
    Tokenizer,
)
from improv.realtime.calls import threshold_s
from improv.realtime.context import Voice
from improv.realtime.engine import Engine
from improv.realtime.notes import LiveNote
from improv.settings.serve_section import ServeSettings

START_S = 1.0  # the call's first note, on the simulated clock


def call_script(call: np.ndarray, bpm: float, channel: int) -> list[tuple[float, mido.Message]]:
    """The call as a performer plays it: (time in seconds, message), a key struck again while it
    sounds ends the note before (as MIDI must: one key per pitch)."""
    first = float(call["start"].min())
    script = []
    for n in playable(notes_of(call)):
        on = START_S + (n.start - first) * 60 / bpm
        script.append((on, mido.Message("note_on", channel=channel, note=n.pitch, velocity=max(n.velocity, 1))))
        script.append((on + max(n.duration, 1e-3) * 60 / bpm, mido.Message("note_off", channel=channel, note=n.pitch, velocity=0)))
    return sorted(script, key=lambda tm: (tm[0], tm[1].type == "note_on"))  # an off before an on at one time


def sent_notes(timed: Sequence[tuple[float, Any]], channel: int) -> list[LiveNote]:
    """Every note sent on ``channel``, in onset order."""
    sounding: dict[int, tuple[float, int]] = {}
    notes = []
    for t, msg in timed:
        if msg.type not in ("note_on", "note_off") or msg.channel != channel:
            continue
        start = sounding.pop(msg.note, None)
        if start is not None:
            notes.append(LiveNote(msg.note, start[0], t, start[1], channel))
        if msg.type == "note_on" and msg.velocity > 0:
            sounding[msg.note] = (t, msg.velocity)
    return sorted(notes, key=lambda n: (n.onset, n.pitch))


def playable_call(call: np.ndarray, settings: ServeSettings, bpm: float) -> bool:
    """Whether an engine hears the call as one call: no silence inside it long enough to end it,
    and no longer than the engine's longest call."""
    from improv.evaluation.phrases import longest_rest

    span = float((call["start"] + call["duration"]).max() - call["start"].min())
    too_long = settings.max_call_beats > 0 and span >= settings.max_call_beats
    return not too_long and longest_rest(call) * 60 / bpm < threshold_s(settings, bpm) * 0.9


class EngineAnswer(NamedTuple):
    notes: np.ndarray  # NOTE_DTYPE, starts in beats (of the call's tempo) from the answer's bar line
    bpm: float  # the engine's tempo for the answer (as it heard the call)
    errors: list[str]  # what the engine reported going wrong (a model error silences an answer)


def engine_answer(model: Any, settings: ServeSettings, params: SamplingParams, call: np.ndarray, span: float, bpm: float, seed: int, voice: str = "") -> EngineAnswer:
    """improv's answer to ``call`` (beats from its bar line) played at ``bpm``: its notes, their
    starts in beats (at ``bpm``) from the answer's bar line ``span`` beats after the call's.
    ``voice``: the model's name, as `improv serve` gives it (``serve.keyless_voices``)."""
    engine = Engine([Voice(voice, model)], dataclasses.replace(settings, bpm=bpm), params, seed=seed)
    performer = settings.listen_channel - 1 if settings.listen_channel else (settings.channel % 16)
    script = call_script(call, bpm, performer)
    until = script[-1][0] + 4 * span * 60 / bpm + 30.0
    timed = drive(engine, script, until, start=script[0][0], shutdown=True)
    first = float(call["start"].min())
    # In the call's beats (its tempo, ``bpm``), as the performer hears it, not in the engine's: an
    # engine that heard the tempo doubled (half the pieces, since it estimates the pulse) would
    # otherwise have every length and gap measured twice as long as it sounded.
    notes = [Note(n.pitch, first + (n.onset - START_S) * bpm / 60 - span, (n.end - n.onset) * bpm / 60, n.velocity) for n in sent_notes(timed, settings.channel - 1)]
    return EngineAnswer(note_array(notes), engine.bpm, engine.take_errors())


def _sampled_notes(rows: list[np.ndarray], tokenizer: Tokenizer) -> np.ndarray:
    if not rows:
        return note_array([])
    events = np.stack(rows).astype(TOKEN_DTYPE)
    events[0, OFFSET] = 0  # the answer's first note on its bar line
    return note_array(tokenizer.decode(events))


def free_answer(model: Any, rng: np.random.Generator, params: SamplingParams, span: float, max_events: int = 256) -> np.ndarray:
    """The voice from a fresh state (BOS, then its own events), ``span`` beats long."""
    tok: Tokenizer = model.tokenizer
    state = model.step(model.initial_state(), tok.special(BOS))
    rows: list[np.ndarray] = []
    beats = 0.0
    mask = generation_pitch_mask(allow_end=False)  # an answer ends at its length, as the engine's do
    while len(rows) < max_events:
        row = model.sample_event(state, rng, params, mask)
        beats += float(tok.time_values[int(row[OFFSET])]) if rows else 0.0
        if rows and beats >= span:
            break
        rows.append(row)
        state = model.step(state, row)
    return _sampled_notes(rows, tok)


def markov_answer(markov: MarkovModel, tokenizer: Tokenizer, call_rows: np.ndarray, rng: np.random.Generator, params: SamplingParams, span: float, max_events: int = 256) -> np.ndarray:
    """The Markov continuator's answer: primed with BOS and the call, ``span`` beats long."""
    history = np.concatenate([tokenizer.special(BOS)[None], np.asarray(call_rows, dtype=TOKEN_DTYPE)])
    context = max(markov.order, 1)
    masks = {PITCH: generation_pitch_mask(allow_end=False), DURATION: np.arange(tokenizer.sizes[DURATION]) > 0}
    rows: list[np.ndarray] = []
    beats = 0.0
    while len(rows) < max_events:
        row = np.zeros(4, dtype=TOKEN_DTYPE)
        for field in HEAD_ORDER:
            p = markov.field_probs(history[-context:], row, field)
            row[field] = sample(np.log(p), rng, params, masks.get(field))
        beats += float(tokenizer.time_values[int(row[OFFSET])]) if rows else 0.0
        if rows and beats >= span:
            break
        rows.append(row)
        history = np.concatenate([history, row[None]])
    return _sampled_notes(rows, tokenizer)


def answer_nll(model: Any, call_rows: np.ndarray, answer_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(summed NLL per field after BOS and the call, the same from BOS alone), FIELD order. From
    BOS alone the answer's first event is a piece's first (offset 0)."""
    bos = model.tokenizer.special(BOS)
    fresh = np.array(answer_rows, copy=True)
    fresh[0, OFFSET] = 0
    totals = []
    for prefix, rows in (([bos, *call_rows], answer_rows), ([bos], fresh)):
        state = model.prime(np.asarray(prefix))
        total = np.zeros(4)
        for row in rows:
            total += model.event_nll(state, row)
            state = model.step(state, row)
        totals.append(total)
    return totals[0], totals[1]


def markov_answer_nll(markov: MarkovModel, tokenizer: Tokenizer, call_rows: np.ndarray, answer_rows: np.ndarray) -> np.ndarray:
    """The Markov model's summed NLL per field of the answer after BOS and the call: the whole
    session's minus the call's (an event's probability depends only on what came before it)."""
    bos = tokenizer.special(BOS)[None]
    primed = np.concatenate([bos, call_rows, answer_rows])
    call = np.concatenate([bos, call_rows])
    return markov.nll([primed])[0] - markov.nll([call])[0]

