"""How an answer follows its call: its texture and register, how it takes up the call's motif,
and how it ends as a phrase. Pure numpy, per sampled head.

**Texture and register**: a single line answers a single line, chords answer chords (no more at
once than the call struck); notes beyond the call's register are made unlikely, far beyond it all
but impossible (``serve.register: follow``).

**Imitation** (``serve.imitation``, 0..1): the call's motif, its onsets' rhythm (offset and length
classes) and its top line's shape, is restated from the answer's start, moved to another degree
of the key (in sequence a step or two up or down, or a fifth; restated at pitch only at
imitation 1: below it, an answer that opens by playing the call back gives itself away), for the last
``imitation`` share of the call's onsets (the whole call at 1): a line's answer picks up where the
call left off rather than opening with the call's head (chords answering chords take the head). Each head of the voice gets a bonus toward the motif's
next value, up to ``IMITATION_NATS`` at 1: the voice follows the motif where it agrees and varies
it where it disagrees strongly. The top line follows the motif's intervals from wherever the
answer is, so one different note does not derail the rest of the shape. A chordal answer carries
the motif in its chords' top notes (``ChordTop``): nothing above the motif's note, and the chord
complete once that note sounds.

**Cadence** (``serve.phrase_ending``): from ``CADENCE_FROM`` of its length on, the answer leans
toward an ending (onsets on a beat, tonic-triad tones of the call's key, notes a beat long or
more: ``serve.rule_cadence``, off by default) and ends at ``HARD_STOP`` times its length.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from improv.music.keys import tonic_triad_pitch_classes
from improv.music.tokenizer import N_PITCH

IMITATION_NATS = 5.0  # the bonus toward the motif's value at imitation 1 (e^5: ~150 to 1)
CADENCE_FROM = 0.8  # share of the answer's length after which it looks for an ending
HARD_STOP = 1.0  # ... and at which it ends (1.5, the length a goal it could overrun, made a third note of improv's folk answers a cadence: the next phrase's downbeat, which a real answer of N bars never holds)
CADENCE_NATS = 1.5  # bonus toward an ending's tonic-triad tones, beats and long notes
SHIFTS = (0, 4, -3, 1, -1, 2, -2)  # scale degrees the motif moves by: restated, a fifth, in sequence
SHIFT_WEIGHTS = np.array([0.4, 0.15, 0.1, 0.1, 0.1, 0.075, 0.075])
REGISTER_SLOPE = 0.5  # nats per semitone a note lies beyond the call's register (serve.register: follow)
REGISTER_MARGIN = 3  # semitones past the call's lowest and highest notes that are still its register
REGISTER_REACH = 12  # ... and beyond this many semitones past it, all but impossible
_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
_MINOR = np.array([0, 2, 3, 5, 7, 8, 10])  # natural minor: the degrees a motif moves along
_CONSONANT_BELOW = np.isin(np.arange(12), [0, 3, 4, 5, 7, 8, 9])  # semitones (mod 12) below a chord's top
_DISSONANT_BELOW = np.isin(np.arange(12), [1, 2, 6, 10, 11])


@dataclass
class Motif:
    """The call's motif as the answer imitates it."""

    offsets: list[int]  # offset class of each onset (the first unused: the answer's start is the grid's)
    durations: list[int]  # duration class of each onset's longest note
    pitches: list[int | None]  # the top line's new note at each onset, moved by a few degrees; None: the top is held there
    span: int  # onsets imitated
    strength: float  # nats at the motif's values
    sizes: list[int] | None = None  # notes the call struck at each onset (a chordal answer's chord as full as the call's there)


def call_onsets(rows: list[np.ndarray], chords: list[bool], time_values: np.ndarray) -> tuple[list[int], list[int], list[int | None]]:
    """(offset class, longest duration class, the top line's new note) of each onset of the
    call's rows. The top line is the skyline, as a listener (and `improv eval --duet`) hears it:
    at each onset the highest note sounding, struck there or held from before; an onset that only
    moves notes under a held top note adds none (None)."""
    groups = onset_groups(rows, chords)
    offsets: list[int] = []
    durations: list[int] = []
    tops: list[int | None] = []
    sounding: list[tuple[float, int]] = []  # (end beat, pitch)
    beat = 0.0
    for k, group in enumerate(groups):
        offset = int(group[0][1])
        beat += float(time_values[offset]) if k else 0.0
        held = max((p for end, p in sounding if end > beat + 1e-6), default=-1)
        struck = max(int(r[0]) for r in group)
        offsets.append(offset)
        durations.append(max(int(r[2]) for r in group))
        tops.append(struck if struck >= held else None)
        sounding = [(end, p) for end, p in sounding if end > beat + 1e-6] + [(beat + float(time_values[int(r[2])]), int(r[0])) for r in group]
    return offsets, durations, tops


def onset_groups(rows: Sequence[np.ndarray], chords: Sequence[bool]) -> list[list[np.ndarray]]:
    """The call's rows by onset (its chord flags: a row joining the onset before it is a chord note)."""
    groups: list[list[np.ndarray]] = []
    for row, chord in zip(rows, chords):
        if chord and groups:
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups


def move_by_degrees(pitch: int, degrees: int, key: tuple[int, bool] | None) -> int:
    """``pitch`` moved ``degrees`` steps along the key's scale (major-scale steps with no key); a
    note outside the scale keeps its distance to the scale note below it."""
    scale = _MINOR if key is not None and key[1] else _MAJOR
    tonic = key[0] if key is not None else 0
    rel = pitch - tonic
    octave, pc = divmod(rel, 12)
    degree = int(np.searchsorted(scale, pc, side="right")) - 1
    chromatic = pc - int(scale[degree])
    octave_shift, new_degree = divmod(degree + degrees, 7)
    return int(tonic + 12 * (octave + octave_shift) + scale[new_degree] + chromatic)


def make_motif(rows: list[np.ndarray], chords: list[bool], imitation: float, key: tuple[int, bool] | None, rng: np.random.Generator, time_values: np.ndarray, allowed: np.ndarray | None = None, tail: bool = True) -> Motif | None:
    """The motif an answer imitates (None at imitation 0, or for a call of one onset). It moves
    by a few degrees of the key: exactly (every interval kept) where all its notes stay allowed
    (``allowed``: a mask over pitches, the key's), else along the scale (a real sequence)."""
    if imitation <= 0 or len(rows) < 2:
        return None
    offsets, durations, tops = call_onsets(rows, chords, time_values)
    sizes = [len(group) for group in onset_groups(rows, chords)]  # notes struck at each onset, as call_onsets groups them
    # The call's last ``imitation`` share, not its head: an answer that opens with the call's first
    # intervals is an echo (the echo rule then breaks it off at its fourth note, so the motif was
    # neither taken up nor avoided: folk's first intervals repeated the call's 0.78 against real
    # answers' 0.38, and its motif uptake was 0.56x real). At imitation 1 this is the whole call.
    # ``tail`` False (chords answering chords): the head, as parts of a chorale or a motet enter
    # with a subject's head (the tail took renaissance's motif uptake from 0.98x real to 0.49x).
    span = min(max(2, int(round(imitation * len(offsets)))), len(offsets))
    start = len(offsets) - span if tail else 0
    if all(p is None for p in tops[start:]):
        start = 0  # the tail only holds its top: take the head
    offsets, durations, tops = offsets[start : start + span], durations[start : start + span], tops[start : start + span]
    sizes = sizes[start : start + span]
    # Restated at pitch only at imitation 1 (the performer asked for an echo); else moved.
    weights = SHIFT_WEIGHTS if imitation >= 1 else np.where(np.array(SHIFTS) == 0, 0.0, SHIFT_WEIGHTS)
    shift = int(SHIFTS[int(rng.choice(len(SHIFTS), p=weights / weights.sum()))])
    first = next(p for p in tops if p is not None)
    interval = move_by_degrees(first, shift, key) - first
    exact = [None if p is None else p + interval for p in tops]
    if allowed is None or all(p is None or (0 <= p < 128 and allowed[p]) for p in exact):
        moved = exact
    else:
        moved = [None if p is None else move_by_degrees(p, shift, key) for p in tops]
    return Motif(offsets, durations, moved, span, IMITATION_NATS * imitation, sizes)


def motif_pitch(motif: Motif, onset: int, line_pitch: int | None) -> int | None:
    """The top note the motif asks for at ``onset`` (None: it holds its top there): its own first
    note, then its intervals from wherever the answer's top line is."""
    pitch = motif.pitches[onset]
    if pitch is None:
        return None
    before = next((p for p in reversed(motif.pitches[:onset]) if p is not None), None)
    if before is None or line_pitch is None:
        return pitch
    return line_pitch + pitch - before


def nearest_allowed(pitch: int, allowed: np.ndarray | None) -> int:
    """``pitch``, or the nearest pitch the mask allows (the lower on a tie)."""
    if allowed is None or (0 <= pitch < 128 and allowed[pitch]):
        return pitch
    for d in range(1, 12):
        for p in (pitch - d, pitch + d):
            if 0 <= p < 128 and allowed[p]:
                return p
    return pitch


def chord_size(m: Motif, onset: int, max_voices: int) -> int:
    """How full a chordal answer's chord at ``onset`` of the motif may grow before its top: as
    full as the call's chord there (its notes per onset, not its fullest chord's), within
    ``max_voices`` (0: as the voice likes)."""
    if m.sizes is None or not 0 <= onset < len(m.sizes):
        return max_voices
    return m.sizes[onset] if not max_voices else min(m.sizes[onset], max_voices)


def keep_below(logits: np.ndarray, pitch: int, strength: float) -> np.ndarray:
    """Notes above ``pitch`` made unlikely: the answer holds its top note where the call held its."""
    if not 0 <= pitch < 127:
        return logits
    logits = logits.copy()
    logits[pitch + 1 : 128] -= strength
    return logits


@dataclass
class ChordTop:
    """A chordal answer's onset whose top note should be the motif's ``wanted`` pitch. Chords are
    drawn lowest first, so notes above ``wanted`` are made unlikely, ``wanted`` itself more likely
    the fuller the chord already is, and once it sounds the onset is complete."""

    wanted: int
    pitches: set[int]  # the onset's notes so far
    voices: int  # notes at one onset, at most (0: as the voice likes, read as four)
    strength: float

    def pitch_bias(self, logits: np.ndarray) -> np.ndarray:
        if not 0 <= self.wanted < 128:
            return logits
        logits = logits.copy()
        logits[self.wanted + 1 : 128] -= self.strength
        logits[self.wanted] += self.strength * min((len(self.pitches) + 1) / (self.voices or 4), 1.0)
        # The chord is drawn before its top note: in the octave below it, tones that make it a consonant top
        # (a triad's root, third or fifth above them) are likelier, seconds and sevenths less so.
        low = max(self.wanted - 12, 0)  # the octave under the top, where a chord's upper voices lie
        below = (self.wanted - np.arange(low, self.wanted)) % 12
        logits[low : self.wanted] += self.strength / 2 * (_CONSONANT_BELOW[below].astype(float) - _DISSONANT_BELOW[below])
        return logits

    @property
    def reached(self) -> bool:
        return self.wanted in self.pitches or not 0 <= self.wanted < 128

    def offset_bias(self, logits: np.ndarray) -> np.ndarray:
        """Offset 0 adds to the onset: unlikely once its top is reached (the chord is complete),
        likelier while it is not (the chord waits for its top: ``processors.motif``)."""
        logits = logits.copy()
        logits[0] += -self.strength if self.reached else self.strength
        return logits


@lru_cache(maxsize=24)  # asked per sampled event; there are 24 keys
def tonic_triad(key: tuple[int, bool]) -> np.ndarray:
    """A bool mask over the pitch tokens: the key's tonic triad tones, in every octave (read-only)."""
    triad = np.zeros(12, dtype=bool)
    triad[list(tonic_triad_pitch_classes(*key))] = True
    mask = np.zeros(N_PITCH, dtype=bool)
    mask[:128] = triad[np.arange(128) % 12]
    mask.setflags(write=False)
    return mask


def on_beat(beats: float) -> bool:
    return abs(beats - round(beats)) < 1e-6


def call_texture(onset_groups: Sequence[int]) -> int:
    """How many notes the answer may strike at once, from the call's onsets (notes per onset):
    1 for a single line, else its largest chord."""
    if not onset_groups:
        return 1
    if sum(onset_groups) / len(onset_groups) <= 1.15:
        return 1
    return int(max(onset_groups))


def call_parts(notes: Sequence[Any], chord_s: float) -> int:
    """The most notes the call sounded at once, held or struck (its notes: ``onset`` and ``off``
    in seconds, ``off`` None while held): its parts. A chorale's call strikes four notes at most
    and sounds four, one part moving in passing under three held. A note released within
    ``chord_s`` after another's onset (legato, or the same instant) no longer sounds there."""
    if not notes:
        return 0
    onsets = np.sort([n.onset for n in notes])
    ends = np.sort([np.inf if n.off is None else max(n.off - chord_s, n.onset) for n in notes])
    # at each onset: the notes begun by then, less those ended by then (a sweep: a call holds up to 512 notes)
    return int((np.searchsorted(onsets, onsets, side="right") - np.searchsorted(ends, onsets, side="right")).max())


def call_bass(rows: Sequence[np.ndarray], chords: Sequence[bool]) -> float | None:
    """The median lowest note of the call's chords (onsets of two notes or more), None when it
    struck none: where its bass lay."""
    lows, group = [], []  # type: ignore[var-annotated]
    for row, chord in list(zip(rows, chords)) + [(None, False)]:
        if row is not None and chord and group:
            group.append(int(row[0]))
            continue
        if len(group) >= 2:
            lows.append(min(group))
        group = [] if row is None else [int(row[0])]
    return float(np.median(lows)) if lows else None


def call_register(call: Any) -> tuple[float, float]:
    """The call's register: the middle of its lowest and highest notes, and half their span plus
    ``REGISTER_MARGIN`` (at least half an octave), in semitones. The whole span, not its middle
    80 %: a register that left out the call's bass and top narrowed every answer (by 5 semitones
    in bach's, against its real answers) and lifted its bass."""
    pitches = np.array([n.pitch for n in call.notes], dtype=float)
    low, high = float(pitches.min()), float(pitches.max())
    return (low + high) / 2, max(6.0, (high - low) / 2 + REGISTER_MARGIN)


def register_bias(register: tuple[float, float]) -> np.ndarray:
    """Pitch-logit penalties for notes beyond the register: 0 inside it, REGISTER_SLOPE nats a
    semitone beyond it, and a wall (finite, so a mask that leaves only far notes still draws one)
    past REGISTER_REACH."""
    centre, half = register
    distance = np.abs(np.arange(N_PITCH, dtype=float) - centre) - half
    bias = -REGISTER_SLOPE * np.clip(distance, 0.0, None)
    bias[distance > REGISTER_REACH] = -40.0
    bias[128:] = 0.0  # BOS/EOS are the mask's business
    return bias
