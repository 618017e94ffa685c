"""The answer closes as its call did (``serve.rule_close``): a call whose last onset falls on a
beat with every note a tone of its key's tonic triad ended on a cadence, and its answer's ending
then leans to one too (onsets on a beat, tonic-triad tones there, long notes: the cadence rule's
bends, for this answer only). Real next-two-bars do this: after a call that closed they close
0.36-0.41 of the time, after one that did not 0.10-0.16 (renaissance and base, 60 held-out pairs
each); a lean on every answer (``rule_cadence``) made all of them close too often (bach 0.45
against 0.07). Pure: the call's rows and grid position in, a bool out; a processor on the heads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from improv.music.tokenizer import DURATION, OFFSET, PITCH
from improv.realtime.shaping import CADENCE_NATS, on_beat, tonic_triad

OPEN_NATS = 0.5  # away from the tonic triad on the ending's beats, after a call left open

if TYPE_CHECKING:
    from improv.realtime.processors import Bend, Step


def call_closes(rows: Sequence[np.ndarray], chords: Sequence[bool], last_pos: float | None, tonality: tuple[int, bool] | None) -> bool:
    """The call ended on a cadence: its last onset (``last_pos``, beats on the performer's grid)
    on a beat, and every note struck there a tonic-triad tone of ``tonality``. Unknown grid or
    key: no."""
    if last_pos is None or tonality is None or not len(rows) or not on_beat(last_pos):
        return False
    last = [int(rows[-1][0])]
    for row, chord in zip(reversed(rows[:-1]), reversed(chords[1:])):
        if not chord:
            break
        last.append(int(row[0]))
    triad = tonic_triad(tonality)
    return all(0 <= p < 128 and triad[p] for p in last)


def close(step: "Step", field: int, row: np.ndarray, logits: np.ndarray, mask: np.ndarray | None, strength: float) -> "Bend":
    """Near its end (``step.cadence``), an answer to a call that closed leans to closing: onsets
    on a beat, tonic-triad tones on the beat, notes a beat long or more."""
    if not step.cadence:
        return logits, mask
    if not step.reading.call_closed:
        # A call left open: its answer's ending on a beat leans away from the tonic triad, as
        # real answers stay open (0.08 close, against improv's 0.20 with no bend: renaissance).
        if field == PITCH and step.reading.tonality is not None and on_beat(step.landing(row)):
            logits = logits - OPEN_NATS * strength * tonic_triad(step.reading.tonality)
        return logits, mask
    nats = CADENCE_NATS * strength
    if field == OFFSET and not step.first:
        landing = step.sampling.beats + step.values[: len(logits)]
        logits = logits + nats * (np.abs(landing - np.round(landing)) < 1e-6)
    elif field == PITCH and step.reading.tonality is not None and on_beat(step.landing(row)):
        logits = logits + nats * tonic_triad(step.reading.tonality)
    elif field == DURATION:
        logits = logits + nats * (step.values[: len(logits)] >= 1.0)
    return logits, mask
