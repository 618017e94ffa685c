"""The key an answer keeps: the call's, estimated from its notes, and, with ``adapt``, the performer's.

Temperley's profile plus the phrase's first and last bass (``music.keys`` measures why); what the
performer played is in the key by definition, and the session memory moves the key toward what
they have been playing (``realtime.idiom_key``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from improv.music.keys import estimate_phrase_key, key_name, scale_pitch_classes
from improv.music.tokenizer import N_PITCH
from improv.realtime.idiom_key import performer_key
from improv.realtime.memory import SessionMemory


def call_key(call: Any, bpm: float, now: float, memory: SessionMemory, range_mask: np.ndarray) -> tuple[np.ndarray, str, tuple[int, bool]]:
    """(pitch mask within ``range_mask``, the key's name, (tonic, minor)) for ``call`` heard at ``bpm``.
    The mask is the range alone where the key leaves nothing of it."""
    pitches = [n.pitch for n in call.notes]
    tonic, minor = estimate_phrase_key(
        pitches, [n.onset - call.first_onset for n in call.notes],
        [max((n.off or now) - n.onset, 0.05) for n in call.notes], beat=60 / bpm)
    allowed = np.zeros(12, dtype=bool)
    allowed[scale_pitch_classes(tonic, minor)] = True
    allowed[np.asarray(pitches) % 12] = True  # what the performer played is in the key by definition
    allowed = performer_key(allowed, np.asarray(pitches), memory, now)  # ... and, with adapt, what they have been playing
    pcs = np.zeros(N_PITCH, dtype=bool)
    pcs[:128] = allowed[np.arange(128) % 12]
    mask = range_mask & pcs if (range_mask & pcs).any() else range_mask
    return mask, key_name(tonic, minor), (tonic, minor)
