"""The answer's rules as a list of small processors, each named, with a strength (0 = off) and a
test of its own. A processor bends one head's logits (and may narrow its mask) for the event being
drawn: ``(step, field, row, logits, mask, strength) -> (logits, mask)``. The guide
(``realtime.guide``) runs them in order *after* the model's temperature, so the temperature is
the voice's and a rule's nats are the same at any temperature.

Two kinds:

* **constraints** (``hard``): always on, never dropped by a fallback: the pitch range (the
  planner's mask, passed in), one key per onset, and an onset left with no key of the range
  moving on (``one_key``).
* **rules** (``serve.rule_*`` strengths): ``key`` (the call's: out-of-key notes only where the
  voice means them), ``texture`` (no chord beyond the call's), ``register``
  (around the call's), ``motif`` (imitation, ``shaping.Motif``; a chordal answer's in its chords'
  top notes), ``cadence`` (the ending on a beat, the tonic triad, a long note), ``opening``
  (the first onset on the tonic triad), ``density`` (notes per beat near the call's) and
  ``echo`` (no answer that plays the call back, at pitch or moved: ``echo_rule.py``) and ``voicing`` (a chord's bass in
  the call's bass register, no three notes within a whole tone).

Another processor (a session memory's mix, say) is one more ``Processor`` in the list given to
``answer_guide``: it sees what the others see, in ``Step``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from improv.music.tokenizer import DURATION, OFFSET, PITCH
from improv.realtime.answer import Answer, CallReading, Sampling
from improv.realtime.chord_rules import voicing
from improv.realtime.echo_rule import echo
from improv.realtime.variety import variety
from improv.realtime.shaping import (
    CADENCE_NATS,
    IMITATION_NATS,
    ChordTop,
    Motif,
    chord_size,
    keep_below,
    motif_pitch,
    nearest_allowed,
    on_beat,
    tonic_triad,
)

Bend = tuple[np.ndarray, "np.ndarray | None"]


@dataclass
class Step:
    """What the processors know of the event being drawn (made once per event by the guide)."""

    reading: CallReading  # the call, as the answer read it
    sampling: Sampling  # what the answer has drawn so far
    values: np.ndarray  # the tokenizer's time values (beats)
    cadence: bool  # the answer is near its end
    first: bool  # its first event
    motif: Motif | None  # the motif while the answer still imitates it
    top: ChordTop | None  # a chordal answer's onset whose top note the motif sets
    hold: int | None  # ... or whose top the motif holds (notes above it unlikely)
    no_key_left: bool  # every key of the range is struck at the onset under way
    chord_full: bool  # the onset under way has as many notes as the answer may strike
    parts_full: bool  # ... or as many notes sound there, held or struck, as the call's parts

    def new_onset(self, row: np.ndarray) -> bool:
        return self.first or int(row[OFFSET]) > 0

    def landing(self, row: np.ndarray) -> float:
        """Where the event being drawn starts, in beats from the answer's first note."""
        return 0.0 if self.first else self.sampling.beats + float(self.values[int(row[OFFSET])])


def step_of(answer: Answer, values: np.ndarray, cadence: bool) -> Step:
    reading, sampling = answer.reading, answer.sampling
    first = sampling.sampled == 0
    motif = sampling.motif if sampling.motif is not None and sampling.onsets < sampling.motif.span else None
    # A chordal answer takes up the motif in its chords' top notes; a chord is drawn lowest first
    # (token order), so the onset under way is onsets - 1 and its interval starts at line_before.
    chordal = sampling.motif is not None and reading.max_voices != 1 and not first
    top = hold = None
    if chordal and 0 < sampling.onsets <= sampling.motif.span:
        wanted = motif_pitch(sampling.motif, sampling.onsets - 1, sampling.line_before)
        if wanted is not None:
            top = ChordTop(nearest_allowed(wanted, reading.mask), sampling.onset_pitches, chord_size(sampling.motif, sampling.onsets - 1, reading.max_voices), sampling.motif.strength)
        else:
            hold = sampling.held_top
    struck = sum(bool(reading.mask[p]) for p in sampling.onset_pitches)
    no_key_left = bool(sampling.onset_pitches) and int(reading.mask.sum()) <= struck
    chord_full = len(sampling.onset_pitches) >= max(reading.max_voices, 1)
    parts_full = reading.max_parts > 0 and sum(1 for end, _ in sampling.sounding if end > sampling.beats + 1e-6) >= reading.max_parts
    return Step(reading, sampling, values, cadence, first, motif, top, hold, no_key_left, chord_full, parts_full)


def _no_chord(mask: np.ndarray | None, size: int) -> np.ndarray:
    no_chord = np.ones(size, dtype=bool)
    no_chord[0] = False  # offset 0 joins the onset: no room for another note there
    return no_chord if mask is None else mask & no_chord


# ---- constraints ------------------------------------------------------------------------------------


def one_key(step: Step, field: int, row: np.ndarray, logits: np.ndarray, mask: np.ndarray | None, strength: float) -> Bend:
    """One instrument: each key once per onset; an onset with no key of the range left moves on."""
    sampling = step.sampling
    if field == OFFSET and not step.first and step.no_key_left:
        mask = _no_chord(mask, len(logits))
    elif field == PITCH and not step.new_onset(row) and sampling.onset_pitches:
        fresh = np.ones(len(logits), dtype=bool)
        fresh[list(sampling.onset_pitches)] = False
        if mask is None or (mask & fresh).any():  # else the range holds (the offset head left no room for this)
            mask = fresh if mask is None else mask & fresh
    return logits, mask


# ---- rules ----------------------------------------------------------------------------------------------


def texture(step: Step, field: int, row: np.ndarray, logits: np.ndarray, mask: np.ndarray | None, strength: float) -> Bend:
    """A line answers a line; chords no fuller than the call's, nor more notes sounding at once than
    its parts (a mask while on): a part moving under held notes moves alone, as a chorale's does,
    unless the chord still waits for the motif's top note (the top line is what is heard)."""
    reading = step.reading
    parts_full = step.parts_full and (step.top is None or step.top.reached)
    if field == OFFSET and not step.first and (reading.max_voices == 1 or (reading.max_voices and step.chord_full) or parts_full):
        mask = _no_chord(mask, len(logits))
    return logits, mask


TURN_BAND = 4.0  # semitones from the call's middle (its top line's median) a line may stray before it turns back
TURN_SLOPE = 0.5  # nats a semitone further out, while it has strayed


def register(step: Step, field: int, row: np.ndarray, logits: np.ndarray, mask: np.ndarray | None, strength: float) -> Bend:
    """Around the call's register (``shaping.register_bias``); and a line that has strayed past
    ``TURN_BAND`` from the call's middle turns back, as a consequent does (``turn_bias``): its
    first note, and every note after the motif it takes up."""
    reading = step.reading
    if field == PITCH and reading.pitch_bias is not None:
        logits = logits + strength * reading.pitch_bias
        # The turn: at the answer's first note and once the motif is done (the motif may climb)
        if reading.max_voices == 1 and step.new_onset(row) and reading.call_line and (step.first or step.motif is None):
            logits = logits + strength * turn_bias(len(logits), step.sampling.line or reading.call_line[-1:], reading.call_line)
    return logits, mask


def turn_bias(size: int, line: list[int], call_line: list[int]) -> np.ndarray:
    """Where the line's latest note (the call's last, for the answer's first) lies more than
    ``TURN_BAND`` above the call's middle, notes further up than the band cost ``TURN_SLOPE`` a
    semitone; below it, the same downwards. Else nothing. The answer may take up a rising tail,
    and then comes back rather than climbing on (the folk voice, answering a call that ended on a
    rising arpeggio, climbed to C6, its median 8 semitones over the call's)."""
    bias = np.zeros(size)
    middle = float(np.median(call_line))
    strayed = line[-1] - middle
    if abs(strayed) <= TURN_BAND:
        return bias
    out = (np.arange(min(size, 128)) - middle) * np.sign(strayed) - TURN_BAND  # semitones past the band, on the side it strayed
    bias[: len(out)] = -TURN_SLOPE * np.clip(out, 0.0, None)
    return bias


RHYTHM_FROM = 0.75  # the imitation dial's value up to which the motif bends no rhythm


def rhythm_nats(m: Motif) -> float:
    """The motif's nats on its rhythm (offsets, lengths): none up to ``RHYTHM_FROM`` on the
    imitation dial, then rising to ``IMITATION_NATS`` at 1 (the performer asked for the call's
    rhythm). A voice that heard the call takes up its rhythm by itself, as much as real answers
    do (folk: 0.54 at imitation 0, real 0.54); the motif's rhythm on top made it 0.83, and that
    was what a listener told improv's answers by."""
    imitation = m.strength / IMITATION_NATS
    return IMITATION_NATS * max(0.0, (imitation - RHYTHM_FROM) / (1.0 - RHYTHM_FROM))


def motif(step: Step, field: int, row: np.ndarray, logits: np.ndarray, mask: np.ndarray | None, strength: float) -> Bend:
    """The call's motif restated and varied (``shaping``): its rhythm, its top line's intervals."""
    reading, sampling, m = step.reading, step.sampling, step.motif
    new_onset = step.new_onset(row)
    top = None if step.top is None else ChordTop(step.top.wanted, step.top.pitches, step.top.voices, step.top.strength * strength)
    if field == OFFSET and not step.first:
        if top is not None:
            # The chord waits for its top note at any imitation: with the wait tied to the motif's
            # rhythm (none below imitation 0.75), chords moved on before their top, under the cap
            # ``ChordTop`` puts above it, and answers sat low (renaissance's top 3.6 semitones
            # under the call's, real +0.1; bach's register -3.6, real +0.2; measured at top_p 1).
            logits = top.offset_bias(logits)
        if m is not None and m.offsets[sampling.onsets] > 0 and (top is None or top.reached):
            logits = logits.copy()
            logits[m.offsets[sampling.onsets]] += rhythm_nats(m) * strength
    elif field == PITCH:
        if m is not None and new_onset and reading.max_voices == 1:
            wanted = motif_pitch(m, sampling.onsets, sampling.line_pitch)
            wanted = None if wanted is None else nearest_allowed(wanted, reading.mask)
            if wanted is not None and 0 <= wanted < 128:
                logits = logits.copy()
                logits[wanted] += m.strength * strength
        elif sampling.motif is not None and reading.max_voices != 1:
            if new_onset and m is not None:  # a chord's lowest note: room below the top
                wanted = motif_pitch(m, sampling.onsets, sampling.line_pitch)
                if wanted is not None:
                    logits = ChordTop(nearest_allowed(wanted, reading.mask), set(), chord_size(m, sampling.onsets, reading.max_voices), m.strength * strength).pitch_bias(logits)
                else:
                    landing = step.landing(row)
                    held = max((p for end, p in sampling.sounding if end > landing + 1e-6), default=-1)
                    logits = keep_below(logits, held, m.strength * strength)
            elif not new_onset and top is not None:
                logits = top.pitch_bias(logits)
            elif not new_onset and step.hold is not None:
                logits = keep_below(logits, step.hold, sampling.motif.strength * strength)
    elif field == DURATION and m is not None and new_onset:
        logits = logits.copy()
        logits[m.durations[sampling.onsets]] += rhythm_nats(m) * strength
    return logits, mask


def cadence(step: Step, field: int, row: np.ndarray, logits: np.ndarray, mask: np.ndarray | None, strength: float) -> Bend:
    """Near its end the answer leans to an ending: onsets on a beat, tonic-triad tones, long notes."""
    if not step.cadence:
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


def opening(step: Step, field: int, row: np.ndarray, logits: np.ndarray, mask: np.ndarray | None, strength: float) -> Bend:
    """The answer begins on the tonic's harmony (every note of its first onset)."""
    reading, sampling = step.reading, step.sampling
    if field == PITCH and not step.cadence and reading.tonality is not None and (step.first or (sampling.onsets == 1 and not step.new_onset(row))):
        logits = logits + CADENCE_NATS * strength * tonic_triad(reading.tonality)
    return logits, mask


DENSITY_NATS = 3.0  # per octave (doubling) of notes per beat beyond DENSITY_BAND of the call's
DENSITY_BAND = 0.25  # log2: within 0.84x..1.19x of the call's density, no bend
DENSITY_PRIOR_BEATS = 2.0  # the running density starts as the call's, as if this many beats were played at it


def density(step: Step, field: int, row: np.ndarray, logits: np.ndarray, mask: np.ndarray | None, strength: float) -> Bend:
    """Notes per beat near the call's (times ``serve.density``): the offset that would take the
    answer's running density (the call's for its first beats) past a band around it is bent away,
    the more the further. No sextuplet runs after a quarter-note call, no flurry after chords."""
    reading, sampling = step.reading, step.sampling
    if field != OFFSET or step.first or reading.call_density <= 0:
        return logits, mask
    wanted = reading.call_density * sampling.density_dial
    beats = sampling.beats + step.values[: len(logits)]
    running = (sampling.sampled + 1 + DENSITY_PRIOR_BEATS * wanted) / (beats + DENSITY_PRIOR_BEATS)
    beyond = np.maximum(np.abs(np.log2(running / wanted)) - DENSITY_BAND, 0.0)
    return logits - DENSITY_NATS * strength * beyond, mask


KEY_KEEP = 0.02  # an out-of-key note the voice gives less than this probability is ruled out
KEY_NATS = 0.5  # ... one it gives more is only bent away


def key(step: Step, field: int, row: np.ndarray, logits: np.ndarray, mask: np.ndarray | None, strength: float) -> Bend:
    """The call's key (``serve.keep_key``: its scale and the pitch classes the call played): a
    note outside it only where the voice really means it (``KEY_KEEP``), and then a little less
    likely. A mask for the rest: real answers step outside the key now and then (one note in ten
    in bach's), improv's never did, and a listener heard it (in_scale 0.96 against 0.90)."""
    if field != PITCH:
        return logits, mask
    key_mask = step.reading.mask
    allowed = np.ones(len(logits), dtype=bool) if mask is None else mask
    z = np.where(allowed, logits, -np.inf)
    p = np.exp(z - z.max())
    p /= p.sum()
    out = ~key_mask[: len(logits)]
    narrowed = allowed & ~(out & (p < KEY_KEEP))
    if narrowed.any():
        mask = narrowed
    return logits - KEY_NATS * strength * out, mask


Process = Callable[[Step, int, np.ndarray, np.ndarray, "np.ndarray | None", float], Bend]


@dataclass(frozen=True)
class Processor:
    name: str
    process: Process
    strength: float = 1.0  # 0: off
    hard: bool = False  # a constraint: always applied, whatever its strength

    def __call__(self, step: Step, field: int, row: np.ndarray, logits: np.ndarray, mask: np.ndarray | None) -> Bend:
        if not self.hard and self.strength <= 0:
            return logits, mask
        return self.process(step, field, row, logits, mask, self.strength)


RULES: dict[str, Process] = {"key": key, "texture": texture, "register": register, "motif": motif, "cadence": cadence, "opening": opening, "density": density, "echo": echo, "voicing": voicing, "variety": variety}


def answer_processors(settings: Any, voice: str = "") -> list[Processor]:
    """The processors of ``settings`` (a ``ServeSettings``) for the voice named ``voice``: the
    constraints, then each rule at its ``rule_<name>`` strength (the cadence and opening only with
    ``phrase_ending``; the key not for ``keyless_voices``)."""
    phrase = bool(settings.phrase_ending)
    out = [Processor("one_key", one_key, hard=True)]
    for name, process in RULES.items():
        strength = float(getattr(settings, f"rule_{name}"))
        if name in ("cadence", "opening") and not phrase:
            strength = 0.0
        if name == "key" and voice in settings.keyless_voices:
            strength = 0.0
        out.append(Processor(name, process, strength))
    return out
