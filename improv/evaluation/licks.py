"""Licks in a scale the voices never learned much of: the scripted performer of the learning
benchmark and tests (an idiom improv can only have picked up from the performer, this session).

How a lick is made (``lick``), all from one seeded generator:
* the scale: ``WHOLE_TONE`` (C D E F# G# A#) or ``BLUES`` (C Eb F F# G Bb, with its flat fifth);
* 7 to 11 notes, the first a scale tone between C4 and C5;
* each next note 1 or 2 scale steps on (weights 3:1), going on the same way with probability 0.7
  and turning at the edges of C3..C6; in the blues, a step from the fourth goes through the flat
  fifth half the time (F F# G, the lick's signature);
* one rhythm per lick, legato: straight eighths, triplet eighths or a dotted-eighth-sixteenth swing, the
  last note a half note;
* velocities 70..100, a little louder on the beat.
Starts and durations in beats from the lick's first note (``NOTE_DTYPE``).
"""

from __future__ import annotations

import numpy as np

from improv.music.notes import Note, note_array

WHOLE_TONE = (0, 2, 4, 6, 8, 10)
BLUES = (0, 3, 5, 6, 7, 10)
SCALES = {"wholetone": WHOLE_TONE, "blues": BLUES}
RHYTHMS = ((0.5,), (1 / 3,), (0.75, 0.25))  # eighths, triplets, swung pairs
LOW, HIGH = 48, 84


def _tones(scale: tuple[int, ...]) -> list[int]:
    return [p for p in range(LOW, HIGH + 1) if p % 12 in scale]


def lick(rng: np.random.Generator, scale: tuple[int, ...] = WHOLE_TONE) -> np.ndarray:
    """One lick; see the module docstring."""
    tones = _tones(scale)
    start = [i for i, p in enumerate(tones) if 60 <= p <= 72]
    i = int(rng.choice(start))
    direction = 1 if rng.random() < 0.5 else -1
    rhythm = RHYTHMS[int(rng.integers(len(RHYTHMS)))]
    count = int(rng.integers(7, 12))
    notes, t = [], 0.0
    for k in range(count):
        last = k == count - 1
        step = rhythm[k % len(rhythm)]
        on_beat = abs(t - round(t)) < 1e-6
        velocity = int(rng.integers(70, 90)) + (10 if on_beat else 0)
        notes.append(Note(tones[i], t, 2.0 if last else step, velocity))  # legato, as a score writes it
        t += step
        if rng.random() > 0.7:
            direction = -direction
        move = 1 if rng.random() < 0.75 else 2
        if scale == BLUES and tones[i] % 12 == 5 and direction > 0 and rng.random() < 0.5:
            move = 1  # F -> F#: the blue note on the way up
        j = i + direction * move
        if not 0 <= j < len(tones):
            direction = -direction
            j = i + direction * move
        i = j
    return note_array(notes)


def licks(count: int, scale: str = "wholetone", seed: int = 0) -> list[np.ndarray]:
    """``count`` licks in ``scale`` (``wholetone`` or ``blues``)."""
    rng = np.random.default_rng(seed)
    return [lick(rng, SCALES[scale]) for _ in range(count)]
