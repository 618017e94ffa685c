"""The rules that voice a chordal answer's chords as a player's hands would (``processors``' list
runs them with the rest): ``voicing``, a bass in the call's bass register and no cluster of three
notes within a whole tone."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from improv.music.tokenizer import PITCH

if TYPE_CHECKING:
    from improv.realtime.processors import Bend, Step  # (for typing only: processors imports this rule)


BASS_BAND = 5.0  # semitones above the call's bass up to which a chord's lowest note is free
BASS_SLOPE = 0.7  # nats a semitone beyond the band


def voicing(step: Step, field: int, row: np.ndarray, logits: np.ndarray, mask: np.ndarray | None, strength: float) -> Bend:
    """Chords voiced as a player's hands would: a chord's lowest note (drawn first) no higher than
    the register the call's bass used, so the answer keeps a bass below its melody; and no cluster of three
    notes within a whole tone in one chord (a mask while on, unless it would leave no key)."""
    reading, sampling = step.reading, step.sampling
    if field != PITCH or reading.max_voices == 1:
        return logits, mask
    if step.new_onset(row):
        if reading.call_bass is not None and not _bass_held(step, row, reading.call_bass + BASS_BAND):
            # Only above it: bent both ways, bach's and renaissance's basses lay 1.5-1.9 semitones above
            # their calls' (real: 0.2-0.7 below) and a listener told them by it; the register rule holds the floor.
            distance = np.arange(len(logits), dtype=np.float64) - reading.call_bass - BASS_BAND
            bend_ = -BASS_SLOPE * strength * np.clip(distance, 0.0, None)
            bend_[128:] = 0.0
            logits = logits + bend_
        return logits, mask
    struck = sorted(sampling.onset_pitches)
    if len(struck) < 2:
        return logits, mask
    allowed = np.ones(len(logits), dtype=bool)
    for p in range(min(len(logits), 128)):
        near = [q for q in struck if abs(q - p) <= 2]
        # three notes within a whole tone: p and two struck notes all within 2 semitones of each other
        if len(near) >= 2 and max(near + [p]) - min(near + [p]) <= 2:
            allowed[p] = False
    narrowed = allowed if mask is None else mask & allowed
    return logits, narrowed if narrowed.any() else mask


def _bass_held(step: Step, row: np.ndarray, ceiling: float) -> bool:
    """A note held into the onset being drawn already sounds in the bass register (at or under
    ``ceiling``): the onset is a part moving over it, free to lie higher. Bent at every onset, a
    renaissance answer's moving upper parts were pulled into the bass: its top lay 2.0 semitones
    under the call's (real 0.0), its chords fuller (2.67 notes an onset, real 2.34)."""
    if step.first:
        return False
    landing = step.landing(row)
    return any(end > landing + 1e-6 and pitch <= ceiling for end, pitch in step.sampling.sounding)
