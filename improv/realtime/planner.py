"""The answer: prepared while the performer is silent, sampled ahead of the notes it sends.

``prepare`` reads the call (its tempo, key, texture and register; the rows to prime the model
from) into an ``Answer``; ``prime_step`` and ``sample`` then advance it one model unit at a time,
so the engine can spread the work over the silence and keep ``lookahead`` ahead while it plays.
Each event is drawn by the voice's own four heads, bent by ``realtime.guide``: the pitch mask
(range and key), texture, register, the call's motif, the cadence (``realtime.shaping``'s rules).
"""

from __future__ import annotations

from typing import Any

import mido
import numpy as np

from improv.model.sampling import SamplingParams
from improv.music.keys import estimate_phrase_key, key_name, scale_pitch_classes
from improv.music.rhythm import estimate_bpm, next_grid_point
from improv.music.tokenizer import BOS, DURATION, N_PITCH, OFFSET, PITCH, VELOCITY
from improv.realtime.answer import Answer, Planned
from improv.realtime.context import ModelContext
from improv.realtime.guide import Guide, answer_guide
from improv.realtime.memory import SessionMemory
from improv.realtime.quantiser import Quantiser
from improv.realtime.shaping import (
    CADENCE_FROM,
    HARD_STOP,
    call_register,
    call_texture,
    make_motif,
    on_beat,
    register_bias,
    tonic_triad,
)
from improv.settings.sections import ServeSettings

SPEC_EVENTS = 4  # events sampled ahead during the silence, at least


class Planner:
    """Makes and advances answers; owns no answer (the engine holds the one in progress)."""

    def __init__(self, settings: ServeSettings, quantiser: Quantiser, channel: int, seed: int) -> None:
        self.settings = s = settings
        self.memory = SessionMemory(quantiser.tokenizer, s.adapt, s.forget_after)  # the performer's idiom, mixed into each head
        self.quantiser = quantiser
        self.channel = channel
        self.seed = seed
        self._time_values = quantiser.tokenizer.time_values
        self._velocity_values = quantiser.tokenizer.velocity_values
        # The pitch mask without a key: notes in range, never BOS/EOS (improv decides when an answer ends).
        self.range_mask = np.zeros(N_PITCH, dtype=bool)
        self.range_mask[s.lowest_pitch : s.highest_pitch + 1] = True  # never empty: config checks lowest <= highest

    def rng(self, exchange: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, exchange))

    # ---- preparing ------------------------------------------------------------------------------

    def prepare(self, call: Any, context: ModelContext, voice: int, bpm: float, tempo_source: str, clock_running: bool, exchange: int, now: float, imitation: float = 0.0) -> Answer:
        """A new answer for the call as it stands: tempo, key, texture, register, what to prime from."""
        s = self.settings
        context.cancel_reprime()
        heard_bpm = bpm  # the call's rows were quantised at this tempo
        if s.estimate_tempo and not (s.follow_clock and clock_running):
            estimate = estimate_bpm([n.onset for n in call.notes], bpm, chord_s=s.chord_ms / 1000)
            if estimate is not None and abs(estimate - bpm) > 0.5:
                bpm, tempo_source = estimate, "estimate"
        call_rows = None
        pos_after = context.pos
        if bpm != heard_bpm and call.events:
            call_rows, pos_after = self.requantize(call, bpm)
            if all(np.array_equal(a, e.row) for a, e in zip(call_rows, call.events)):
                call_rows = None  # same rows: the running state stays valid
        rows = None
        if call_rows is not None or context.stale:
            by_index = {} if call_rows is None else {e.index: r for e, r in zip(call.events, call_rows)}
            rows = np.stack([by_index.get(e.index, e.row) for e in context.window])
        mask, key, tonality = self.range_mask, "", None
        if s.keep_key:
            # Temperley's profile plus the phrase's first and last bass (music/keys.py measures why)
            pitches = [n.pitch for n in call.notes]
            tonic, minor = estimate_phrase_key(
                pitches, [n.onset - call.first_onset for n in call.notes],
                [max((n.off or now) - n.onset, 0.05) for n in call.notes], beat=60 / bpm)
            allowed = np.zeros(12, dtype=bool)
            allowed[scale_pitch_classes(tonic, minor)] = True
            allowed[np.asarray(pitches) % 12] = True  # what the performer played is in the key by definition
            pcs = np.zeros(N_PITCH, dtype=bool)
            pcs[:128] = allowed[np.arange(128) % 12]
            if (mask & pcs).any():
                mask = mask & pcs
            key, tonality = key_name(tonic, minor), (tonic, minor)
        call_end = max(n.off or now for n in call.notes)
        if s.response_unit == "events":
            target = s.response_length or call.note_count
        else:
            target = s.response_length or (call_end - call.first_onset) * bpm / 60
        answer = Answer(
            version=context.version,
            voice=voice,
            bpm=bpm,
            tempo_source=tempo_source,
            key=key,
            rng=self.rng(exchange),
            mask=mask,
            call_velocity=float(np.mean([n.velocity for n in call.notes])),
            target=target,
            rows=rows,
            call_rows=call_rows,
            pos_after_call=pos_after,
            max_voices=s.max_voices or call_texture(call.onset_groups(s.chord_ms / 1000)),
            pitch_bias=register_bias(call_register(call)) if s.register == "follow" else None,
            tonality=tonality,
            motif_call=(call_rows or [e.row for e in call.events], [e.chord for e in call.events]),
        )
        answer.motif = make_motif(*answer.motif_call, imitation, tonality, answer.rng, self._time_values, mask)
        answer.memory = self.memory.cursor(answer.motif_call[0], now)
        if rows is None:
            answer.state = answer.base = context.state
        else:
            answer.state = context.model.initial_state()
        return answer

    def requantize(self, call: Any, bpm: float) -> tuple[list[np.ndarray], float | None]:
        """The call's rows as they would be at ``bpm`` (the tempo estimated from the call itself)."""
        pos = call.pos_before
        rows = []
        for e in call.events:
            offset, pos = self.quantiser.offset(e.onset, pos, e.chord, bpm)
            rows.append(self.quantiser.row(e.pitch, offset, e.duration, e.velocity, bpm))
        return rows, pos

    # ---- advancing --------------------------------------------------------------------------------

    def prime_step(self, answer: Answer, model: Any) -> int:
        assert answer.rows is not None
        answer.state = model.step(answer.state, answer.rows[answer.primed])
        answer.primed += 1
        if answer.primed == len(answer.rows):
            answer.base = answer.state
        return 1

    def restart(self, answer: Answer, exchange: int, imitation: float) -> None:
        """The temperature or the imitation changed before the answer started: sample it again."""
        if answer.base is not None:
            answer.state = answer.base
        answer.planned.clear()
        answer.sampled = answer.onsets = 0
        answer.beats = 0.0
        answer.onset_pitches = set()
        answer.line_pitch = answer.line_before = None
        answer.sounding, answer.held_top = [], -1
        answer.closing = answer.finished = False
        answer.model_velocity_sum = 0.0
        answer.rng = self.rng(exchange)
        answer.motif = make_motif(*answer.motif_call, imitation, answer.tonality, answer.rng, self._time_values, answer.mask)
        if answer.memory is not None:
            answer.memory.reset()

    def wants_more(self, answer: Answer, now: float) -> bool:
        if answer.finished or not answer.ready:
            return False
        lookahead = self.settings.lookahead_ms / 1000
        if answer.start is None:
            return answer.sampled < SPEC_EVENTS or answer.beats * 60 / answer.bpm < lookahead
        return not answer.planned or answer.planned[-1].onset < now + lookahead

    def progress(self, answer: Answer, length_factor: float, beats: float | None = None) -> float:
        """How far through its length the answer is: by its last onset (beats) or its events."""
        target = max(answer.target * length_factor, 1e-9)
        if self.settings.response_unit == "events":
            return answer.sampled / target
        return (answer.beats if beats is None else beats) / target

    def sample(self, answer: Answer, model: Any, params: SamplingParams, length_factor: float) -> int:
        """Sample the answer's next event and step the model with it (two units)."""
        s = self.settings
        target = answer.target * length_factor
        limit = HARD_STOP if s.phrase_ending else 1.0  # with phrase endings, the length is a goal, not a cut
        if answer.sampled >= s.max_response_events or (answer.sampled and s.response_unit == "events" and self.progress(answer, length_factor) >= limit):
            answer.finished, answer.finished_target = True, target
            return 0
        guide = self.guide(answer, length_factor)
        if answer.memory is not None:  # the session memory's mix, under the answer's own rules
            guide = answer.memory.bend(guide)
        row = model.sample_event(answer.state, answer.rng, params, answer.mask, guide)
        if int(row[PITCH]) >= BOS:  # only with a mask allowing nothing else; end the answer
            answer.finished = True
            return 1
        offset = float(self._time_values[int(row[OFFSET])])
        new_onset = answer.sampled == 0 or offset > 0
        beats = 0.0 if answer.sampled == 0 else answer.beats + offset
        beyond = answer.sampled and s.response_unit == "beats" and self.progress(answer, length_factor, beats) >= limit
        if (answer.closing and new_onset) or beyond:  # the ending's chord is complete, or it is long enough
            answer.finished, answer.finished_target = True, target
            return 1
        state = model.step(answer.state, row)
        model_velocity = float(self._velocity_values[int(row[VELOCITY])])
        answer.model_velocity_sum += model_velocity
        shift = s.follow_velocity * (answer.call_velocity - answer.model_velocity_sum / (answer.sampled + 1))
        velocity = int(min(max(round(model_velocity + shift), 1), 127))
        pitch = int(row[PITCH])
        msg = mido.Message("note_on", channel=self.channel, note=pitch, velocity=velocity)
        duration = float(self._time_values[max(int(row[DURATION]), 1)])
        planned = Planned(row, state, beats, duration, pitch, velocity, msg)
        if answer.start is not None:
            planned.onset = answer.start + beats * 60 / answer.bpm
        if new_onset:
            answer.onsets += 1
            answer.line_before = answer.line_pitch
            answer.sounding = [(end, p) for end, p in answer.sounding if end > beats + 1e-6]
            answer.held_top = max((p for _, p in answer.sounding), default=-1)
            answer.onset_pitches = {pitch}
        else:
            answer.onset_pitches = answer.onset_pitches | {pitch}
        answer.sounding.append((beats + duration, pitch))
        struck = max(answer.onset_pitches)
        answer.line_pitch = struck if struck >= answer.held_top else answer.line_before
        answer.planned.append(planned)
        if answer.memory is not None:
            answer.memory.push(row)
        answer.state = state
        answer.sampled += 1
        answer.beats = beats
        if s.phrase_ending and self._ends_phrase(answer, pitch, duration, self.progress(answer, length_factor)):
            answer.closing = True
        return 2

    def _ends_phrase(self, answer: Answer, pitch: int, duration: float, progress: float) -> bool:
        """This note ends the answer: it is near its length, on a beat, a tonic-triad tone of the
        call's key (when known), and a beat long or more (or the answer is at its length)."""
        if progress < CADENCE_FROM or not on_beat(answer.beats):
            return False
        if answer.tonality is not None and not tonic_triad(answer.tonality)[pitch]:
            return False
        return duration >= 1.0 or progress >= 1.0

    def guide(self, answer: Answer, length_factor: float = 1.0) -> Guide:
        """The answer's bends on each head (``realtime.guide``), the cadence once it is near its end."""
        cadence = self.settings.phrase_ending and self.progress(answer, length_factor) >= CADENCE_FROM
        return answer_guide(answer, self._time_values, cadence, self.settings.phrase_ending)

    # ---- starting ---------------------------------------------------------------------------------

    def commit(self, answer: Answer, call: Any, context: ModelContext, length_factor: float) -> None:
        """The call has ended: what the answer's preparation assumed becomes true (the call's rows
        at the estimated tempo, the state primed from the window), and its length is fitted."""
        if answer.call_rows is not None:
            for e, row in zip(call.events, answer.call_rows):
                e.row = row
            context.pos = answer.pos_after_call
        if answer.rows is not None:
            context.primed_from(len(answer.rows), answer.base)
        context.cancel_reprime()
        self.memory.hear([e.row for e in call.events], call.last_activity)  # learned in the think slices to come
        self.fit_length(answer, length_factor)

    def fit_length(self, answer: Answer, length_factor: float) -> None:
        """The length knob may have moved since the speculation: cut what is too long, or let a
        finished answer go on."""
        target = answer.target * length_factor * (HARD_STOP if self.settings.phrase_ending else 1.0)
        if self.settings.response_unit == "events":
            while len(answer.planned) > max(1, round(target)):
                answer.planned.pop()
        else:
            while len(answer.planned) > 1 and answer.planned[-1].beats >= target:
                answer.planned.pop()
        if len(answer.planned) < answer.sampled:
            answer.finished = True
            answer.state = answer.planned[-1].state
        elif answer.finished and not answer.closing and target > answer.finished_target * (HARD_STOP if self.settings.phrase_ending else 1.0):
            answer.finished = False
        answer.sampled = len(answer.planned)
        answer.beats = answer.planned[-1].beats if answer.planned else 0.0

    def first_note_time(self, decided: float, first_onset: float, bpm: float, clock_grid: tuple[float, float] | None) -> tuple[float, str]:
        """When the answer's first note goes, and what it is aligned to ("" = at once): the first
        point of the beat grid at or after the decision.

        The grid: the MIDI clock's beats when a followed clock's transport places them; else the
        call's own pulse, its first onset (the arrival stamp) on a beat, at the answer's tempo.
        Why the onset and not the running grid position: the grid position carries the previous
        answer's grid into the call, and a long gap before the call is quantised coarsely (a call
        5 s after a note sat 100 ms off its real onset), which would put the answer off the beat
        the performer actually played.
        """
        beats = self.settings.answer_grid_beats
        decided += self.settings.answer_lead_beats * 60 / bpm  # a breath after the silence, in beats: the same at any tempo
        if beats <= 0:
            return decided, ""
        name = "beat" if beats == 1 else "half beat" if beats == 0.5 else f"{beats:g}-beat grid"
        if clock_grid is not None:
            origin, beat_s = clock_grid
            name += " of the MIDI clock"
        else:
            origin, beat_s = first_onset, 60 / bpm
        return next_grid_point(decided, origin, beats * beat_s), name
