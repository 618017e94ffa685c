"""What goes under a melody on the next beat, decided before that beat from what was played so far.

Pure: pitches and beats in, pitches out. Two accompanists:

- ``harmony``: a diatonic triad per beat in the key heard so far, the one that best fits the melody
  note the beat will most likely bring (the note sounding now, or a step from it: the performer's
  own moves so far, over a prior of repeats and steps), the bass on its root. Why a guess about the
  next note: the chord must be on time, so it is chosen before the performer's note on that beat.
- ``tonic``: the rule baseline: the key's tonic triad, struck once per bar.

``consonant`` is the one definition of consonance the scores use too (unison, third, fifth, sixth,
octave, mod 12: as ReaLchords counts it).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import islice

import numpy as np

from improv.music.keys import estimate_key
from improv.realtime.melody_guess import CONTEXT, NONE, MelodyGuess, features
from improv.realtime.melody_net import WEIGHTS

CONSONANT = frozenset({0, 3, 4, 7, 8, 9})  # semitones mod 12: unison/octave, thirds, fifth, sixths


def consonant(melody: int, under: int) -> bool:
    """A note ``under`` the melody note: consonant when the melody lies a unison, third, fifth,
    sixth or octave above it (mod 12; a fourth above is not)."""
    return (melody - under) % 12 in CONSONANT


# Diatonic triads (root degree in semitones above the tonic, third, fifth) and a small preference
# for the functional ones (I, IV, V first): ties go to the chord a player would reach for.
_MAJOR = [(0, 4, 7, 0.06), (5, 4, 7, 0.04), (7, 4, 7, 0.05), (9, 3, 7, 0.02), (2, 3, 7, 0.01), (4, 3, 7, 0.0)]
_MINOR = [(0, 3, 7, 0.06), (5, 3, 7, 0.04), (7, 4, 7, 0.05), (8, 4, 7, 0.02), (3, 4, 7, 0.01), (10, 4, 7, 0.0)]
_GUESS = MelodyGuess("".join(WEIGHTS))
# Weight of "what followed the last k notes the time before", by k (2, 3, 4 and more). Tuned on
# training chorales (every 7th from the 1st and from the 2nd), never on the held-out ones; there
# the performer's own interval habits, blended in, did worse than the learned table alone.
REPEAT = (0.0, 0.0, 0.15, 0.3, 0.5)
MAX_MATCH = 8  # the longest run of notes looked up
MAX_FOLLOWS = 20_000  # runs remembered at most
_CONS = np.array([[consonant(m, a) for m in range(12)] for a in range(12)], dtype=np.float64)  # [under, melody]


@dataclass
class Melody:
    """The performer's melody so far (bounded): what the accompanist decides from."""

    notes: deque = field(default_factory=lambda: deque(maxlen=256))  # (onset s, pitch)
    weights: np.ndarray = field(default_factory=lambda: np.zeros(12))  # pitch-class time (key estimate)
    held: dict = field(default_factory=dict)  # pitch -> onset, keys down
    lowest: int = 127
    # What followed each run of k notes (k = 2..MAX_MATCH) the last time it was played: the
    # continuation is a dictionary look-up, not a search, inside ``due``.
    follows: dict = field(default_factory=dict)
    _key: tuple[int, bool] | None = None  # the estimate, until the next key down or up

    def down(self, pitch: int, now: float) -> None:
        if len(self.follows) > MAX_FOLLOWS:  # bounded over an hour of playing: start learning afresh
            self.follows.clear()
        before = tuple(p for _, p in islice(reversed(self.notes), MAX_MATCH))[::-1]
        for k in range(2, len(before) + 1):
            self.follows[before[-k:]] = pitch
        self.notes.append((now, pitch))
        self._key = None
        self.held[pitch] = now
        self.weights[pitch % 12] += 0.25  # struck: some weight at once (its length comes at the release)
        self.lowest = min(self.lowest, pitch) if len(self.notes) > 1 else pitch

    def up(self, pitch: int, now: float, beat_s: float) -> None:
        onset = self.held.pop(pitch, None)
        if onset is not None:
            self.weights[pitch % 12] += min((now - onset) / beat_s, 2.0)
            self._key = None

    def current(self) -> int | None:
        """The melody note sounding (the top key down), else the last one struck."""
        if self.held:
            return max(self.held)
        return self.notes[-1][1] if self.notes else None

    def key(self) -> tuple[int, bool]:
        if self._key is None:
            w = self.weights.copy()
            for _, p in islice(reversed(self.notes), 8):
                w[p % 12] += 0.1
            self._key = estimate_key(w) if w.any() else (0, False)
        return self._key

    def at(self, t: float) -> int | None:
        """The melody note struck last at or before ``t``."""
        for onset, pitch in reversed(self.notes):
            if onset <= t:
                return pitch
        return None

    def next_pitch_classes(self, beat_at: float, beat_s: float, position: int, key: tuple[int, bool] | None = None) -> np.ndarray:
        """A distribution over the pitch class the beat at ``beat_at`` will bring (``position``: its
        place in the bar), from the melody struck before it: the learned guess (``melody_guess``),
        and, when the performer repeats themselves, what followed last time."""
        if self.current() is None:
            return np.zeros(12)
        tonic, minor = key if key is not None else self.key()
        before = []
        for k in range(CONTEXT):
            pitch = self.at(beat_at - 0.1 * beat_s - k * beat_s)
            before.append(NONE if pitch is None else (pitch - tonic) % 12)
        p = np.roll(_GUESS(features(before, position, minor)), tonic)
        follows, k = self.continuation()
        if follows is not None:  # the performer is repeating themselves: what came next last time
            w = REPEAT[min(k, len(REPEAT) - 1)]
            p = (1 - w) * p
            p[follows % 12] += w
        return p

    def continuation(self) -> tuple[int | None, int]:
        """The note that followed the longest earlier match (2 to 8 notes) of the melody's last
        notes, and the match's length; (None, 0) without one. A melody that returns (a chorale's
        repeated opening, a tune's refrain) tells what comes next."""
        tail = tuple(p for _, p in islice(reversed(self.notes), MAX_MATCH))[::-1]
        for k in range(len(tail), 1, -1):
            follows = self.follows.get(tail[-k:])
            if follows is not None:
                return follows, k
        return None, 0


def choose_chord(melody: Melody, previous: tuple[int, ...] | None, beat_at: float, beat_s: float, position: int) -> tuple[int, ...]:
    """The next beat's chord as pitch classes: its root in the bass, then the tones above it. Each
    diatonic triad is tried voiced in full and as its root and third or its third and fifth
    (the third always: it says major or minor); the one most likely consonant with the melody
    note the beat will bring wins, a full triad or the chord already sounding on a near tie."""
    key = melody.key()
    chords, consonance, bonus = _candidates(*key)
    score = consonance @ melody.next_pitch_classes(beat_at, beat_s, position, key) + bonus
    if previous is not None and previous in chords:
        score[chords.index(previous)] += 0.02  # keep a chord that still fits: less churn
    return chords[int(np.argmax(score))]


@lru_cache(maxsize=24)
def _candidates(tonic: int, minor: bool) -> tuple[list[tuple[int, ...]], np.ndarray, np.ndarray]:
    """A key's chords as voiced (bass, upper tones), each one's consonance with every melody pitch
    class (the share of its notes consonant), and its preference: computed once per key."""
    chords, rows, bonuses = [], [], []
    for root, third, fifth, bonus in (_MINOR if minor else _MAJOR):
        r, t, f = (tonic + root) % 12, (tonic + root + third) % 12, (tonic + root + fifth) % 12
        for upper, full in (((r, t, f), 0.01), ((r, t), 0.0), ((t, f), 0.0)):
            chord = (r, *upper)
            chords.append(chord)
            rows.append(_CONS[list(chord)].mean(axis=0))
            bonuses.append(bonus + full)
    return chords, np.array(rows), np.array(bonuses)


def warm_up() -> None:
    """Every key's candidates built now, not inside the first ``due`` that needs them."""
    for k in range(24):
        _candidates(k % 12, k >= 12)


def tonic_chord(melody: Melody) -> tuple[int, ...]:
    tonic, minor = melody.key()
    return (tonic, tonic, (tonic + (3 if minor else 4)) % 12, (tonic + 7) % 12)


def voice(chord: tuple[int, ...], melody_low: int, bass_before: int | None = None) -> list[int]:
    """Pitches for a chord (bass pitch class, then the upper tones') under a melody whose lowest
    note so far is ``melody_low``: the upper tones in the octave just below that note (at least a
    tone below it); the bass at least a fourth below them, between A1 and G3, as near the bass
    before (``bass_before``) as it can be: a bass line that moves by step and leap, not by octave."""
    top = max(melody_low - 2, 48)
    upper = []
    for pc in chord[1:]:
        p = top - ((top - pc) % 12)
        upper.append(p)
    ceiling = min(min(upper) - 5, 55)
    options = [p for p in range(33, ceiling + 1) if p % 12 == chord[0] % 12] or [ceiling - ((ceiling - chord[0]) % 12)]
    target = bass_before if bass_before is not None else ceiling - 9
    bass = min(options, key=lambda p: (abs(p - target), p))
    return sorted({bass, *upper})
