"""How well the call being answered fits what the performer has been playing: whether the
session memory's pitch classes are the performer's idiom or a key they have left.

The memory's pitch-class table and the key rule's performer scale (``realtime.idiom_key``) come
from the calls before this one (a call is learned after its answer is prepared). An idiom kept
over the set (blues licks in C, call after call) fits each new call; a key left behind does not:
after five calls in E major a call in G major plays G, C and D, three of its seven pitch classes
outside the memory's scale, and the memory pulled G#, C# and D# into the answer (the folk demo's
G# and Bb over a G-major call, from the call before's A-flat major). ``agreement`` is 1 when the
call's notes lie in the performer's recent scale and falls to 0 as they leave it; the memory's
pitch classes and the key rule's scale count that much, the call's own pitch classes the rest.
Intervals, rhythm and dynamics are transposable and keep their say.
"""

from __future__ import annotations

from itertools import islice
from typing import Any, Sequence

import numpy as np

from improv.music.tokenizer import PITCH

RECENT = 48  # events (some five calls) the performer's scale is read from
FIT_NONE = 0.6  # share of the call's notes in the recent scale at which the memory's scale has no say
FIT_FULL = 0.85  # ... and from which it has its full say (a passing note or two of ten is still the idiom)


def scale_strength(memory: Any) -> np.ndarray | None:
    """How firmly each pitch class is in the performer's recent playing, 0..1 (None: nothing heard):
    1 for a pitch class with at least half the average share of the ones played (``p V >= 1/2``,
    V the perplexity of the pitch classes), 0 for one with a quarter of it or less (a passing note).
    ``memory``: a ``SessionMemory`` (its ``remembered`` events, oldest first)."""
    p = np.zeros(12)
    for row, weight, _ in islice(reversed(memory.remembered), RECENT):
        p[int(row[PITCH]) % 12] += weight
    if p.sum() <= 0:
        return None
    p /= p.sum()
    used = p[p > 0]
    variety = float(np.exp(-(used * np.log(used)).sum()))
    return np.clip(4.0 * p * variety - 1.0, 0.0, 1.0)


def agreement(strength: np.ndarray | None, call_pitches: Sequence[int]) -> float:
    """1: the call's notes (each counted once) lie in the recent scale (``scale_strength``), so
    the memory's pitch classes are the performer's; 0: some 40 % or more of them lie outside, the
    call is in a key the memory has not heard lately. One pitch class outside is not a new key
    (a passing note, or a tone of the performer's scale not played lately): 1. No call notes or no
    memory: 1."""
    pcs = np.asarray(call_pitches, dtype=int) % 12
    if strength is None or not len(pcs):
        return 1.0
    outside = strength[pcs] <= 0
    if len(np.unique(pcs[outside])) <= 1:
        return 1.0
    fit = 1.0 - float(outside.mean())
    return float(np.clip((fit - FIT_NONE) / (FIT_FULL - FIT_NONE), 0.0, 1.0))


def call_pitch_classes(call_pitches: Sequence[int]) -> np.ndarray | None:
    """The call's pitch classes by note count, summing to 1 (None: no notes)."""
    pcs = np.asarray(call_pitches, dtype=int) % 12
    if not len(pcs):
        return None
    return np.bincount(pcs, minlength=12).astype(float) / len(pcs)
