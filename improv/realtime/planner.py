"""The answer: prepared while the performer is silent, sampled ahead of the notes it sends.

``prepare`` reads the call (its tempo, key, texture and register; the rows to prime the model
from) into an ``Answer``; ``prime_step`` and ``sample`` then advance it one model unit at a time,
so the engine can spread the work over the silence and keep ``lookahead`` ahead while it plays.
Each event is drawn by the voice's own four heads, bent by ``realtime.guide``: the pitch mask
(range and key), texture, register, the call's motif, the cadence (``realtime.shaping``'s rules).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import mido
import numpy as np

from improv.model.sampling import SamplingParams
from improv.music.notes import Note
from improv.music.pulse import snap
from improv.music.tokenizer import BOS, DURATION, N_PITCH, OFFSET, PITCH, VELOCITY
from improv.realtime.answer import Answer, CallReading, Planned, Playback, Sampling
from improv.realtime.call_key import call_key
from improv.realtime.context import ModelContext
from improv.realtime.dynamics import Dynamics, answer_velocity
from improv.realtime.guide import Guide, answer_guide
from improv.realtime.entry import entry_period, place_answer
from improv.realtime.processors import answer_processors
from improv.realtime.memory import SessionMemory
from improv.realtime.quantiser import Quantiser
from improv.realtime.clock_follower import Grid
from improv.realtime.tempo import SetTempo, answer_time, grid_pulse, landing_mask
from improv.realtime.shaping import (
    CADENCE_FROM,
    HARD_STOP,
    call_register,
    call_bass,
    call_onsets,
    call_texture,
    make_motif,
    on_beat,
    register_bias,
    tonic_triad,
)
from improv.settings.serve_section import ServeSettings

SPEC_EVENTS = 4  # events sampled ahead during the silence, at least
EARLY_ENDING = False  # an answer ends before its length on a long tonic note on a beat: off, for real 2-bar answers end on a cadence 0.04-0.14 of the time and improv's then did 0.35-0.55
ENDING_BEATS = 1.0  # a note ending an answer before its length: a tonic-triad tone this long (1.5 made bach's answers run on: 40 notes to the real 34, cadences no rarer)


class Planner:
    """Makes and advances answers; owns no answer (the engine holds the one in progress)."""

    def __init__(self, settings: ServeSettings, quantiser: Quantiser, channel: int, seed: int, voice_names: Sequence[str] = ("",)) -> None:
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
        self.tempo = SetTempo(s)  # the tempo of the set, carried from call to call
        self.processors = [answer_processors(s, name) for name in voice_names]  # each voice's constraints and rules (realtime.processors)
        self.density = s.density  # the density dial (its knob moves it)

    def rng(self, exchange: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, exchange))

    # ---- preparing ------------------------------------------------------------------------------

    def prepare(self, call: Any, context: ModelContext, voice: int, bpm: float, tempo_source: str, clock_running: bool, exchange: int, now: float, imitation: float = 0.0, clock_grid: Grid | None = None) -> Answer:
        """A new answer for the call as it stands: tempo, key, texture, register, what to prime
        from. ``clock_grid``: a followed MIDI clock's (beat time, beat seconds, downbeat), when its
        transport places the beat: the grid the call is read on and the answer placed on."""
        s = self.settings
        context.cancel_reprime()
        self.memory.catch_up()  # the answer reads the memory as the calls before left it (engine._may_learn)
        heard_bpm = bpm  # the call's rows were quantised at this tempo
        pulse = None
        if clock_grid is not None:  # a followed MIDI clock's transport or a Link session: its beat
            pulse = grid_pulse(clock_grid, s)
            bpm = pulse.bpm
        elif s.follow_clock and clock_running:
            pass  # a clock's tempo without its phase: the call's own beat, at the clock's tempo
        elif s.estimate_tempo:
            pulse = self.tempo.hear(call, now)
            if pulse is not None:
                bpm, tempo_source = pulse.bpm, "estimate"
        call_rows = None
        pos_after = context.pos
        if (pulse is not None or bpm != heard_bpm) and call.events:
            # The call's rows again, at the tempo heard, each onset on its nearest sixteenth or
            # triplet of the performer's beat (swing taken out): the rhythm the performer meant.
            call_rows, pos_after = self.requantize(call, bpm, pulse)
            if all(np.array_equal(a, e.row) for a, e in zip(call_rows, call.events)):
                call_rows = None  # same rows: the running state stays valid
        rows = None
        if call_rows is not None or context.stale:
            by_index = {} if call_rows is None else {e.index: r for e, r in zip(call.events, call_rows)}
            rows = np.stack([by_index.get(e.index, e.row) for e in context.window])
        mask, key, tonality = self.range_mask, "", None
        if s.keep_key:
            mask, key, tonality = call_key(call, bpm, now, self.memory, self.range_mask)
        call_end = max(n.off or now for n in call.notes)
        if s.response_unit == "events":
            target = s.response_length or call.note_count
        else:
            target = s.response_length or (call_end - call.first_onset) * bpm / 60
            if s.entry == "bar" and pulse is not None:  # whole bars, as long as the call's
                target = max(1, math.ceil(target / pulse.beats_per_bar - 0.25)) * pulse.beats_per_bar
        motif_call = (call_rows or [e.row for e in call.events], [e.chord for e in call.events])
        span_beats = (call_end - call.first_onset) * bpm / 60
        reading = CallReading(
            version=context.version,
            voice=voice,
            bpm=bpm,
            tempo_source=tempo_source,
            key=key,
            mask=mask,
            dynamics=Dynamics.of_call([n.velocity for n in sorted(call.notes, key=lambda n: n.onset)]),
            target=target,
            rows=rows,
            call_rows=call_rows,
            pos_after_call=pos_after,
            max_voices=s.max_voices or call_texture(call.onset_groups(s.chord_ms / 1000)),
            pitch_bias=register_bias(call_register(call)) if s.register == "follow" else None,
            tonality=tonality,
            motif_call=motif_call,
            call_line=[p for p in call_onsets(*motif_call, self._time_values)[2] if p is not None],
            call_bass=call_bass(*motif_call),
            call_density=len(call.notes) / span_beats if span_beats > 0 else 0.0,
            pulse=pulse,
            last_pos=None if pulse is None or pos_after is None else round((pos_after - pulse.origin) / pulse.beat_s * 12) / 12,
        )
        answer = Answer(reading, self._sampling(reading, exchange, imitation, self.memory.cursor(motif_call[0], now)))
        if rows is None:
            answer.sampling.state = answer.sampling.base = context.state
        else:
            answer.sampling.state = context.model.initial_state()
        return answer

    def requantize(self, call: Any, bpm: float, pulse: Any = None) -> tuple[list[np.ndarray], float | None]:
        """The call's rows as they would be at ``bpm`` (the tempo estimated from the call itself),
        onsets snapped to ``pulse``'s sixteenths and triplets when it is given."""
        pos = call.pos_before
        rows = []
        for e in call.events:
            onset = e.onset if pulse is None else pulse.origin + snap(pulse.position(e.onset)) * pulse.beat_s
            offset, pos = self.quantiser.offset(onset, pos, e.chord, bpm)
            rows.append(self.quantiser.row(e.pitch, offset, e.duration, e.velocity, bpm))
        return rows, pos

    # ---- advancing --------------------------------------------------------------------------------

    def prime_step(self, answer: Answer, model: Any) -> int:
        assert answer.reading.rows is not None
        answer.sampling.state = model.step(answer.sampling.state, answer.reading.rows[answer.sampling.primed])
        answer.sampling.primed += 1
        if answer.sampling.primed == len(answer.reading.rows):
            answer.sampling.base = answer.sampling.state
        return 1

    def _sampling(self, reading: CallReading, exchange: int, imitation: float, memory: Any) -> Sampling:
        """Sampling from its start: the exchange's own random stream, the motif drawn from it."""
        rng = self.rng(exchange)
        motif = make_motif(*reading.motif_call, imitation, reading.tonality, rng, self._time_values, reading.mask, tail=reading.max_voices == 1)
        return Sampling(rng=rng, motif=motif, density_dial=self.density, memory=memory)

    def first_note(self, answer: Answer, model: Any, params: SamplingParams, length_factor: float) -> int:
        """The call has ended: the priming finished and the first note sampled, if the speculation
        had not got so far (the model units this took, at the decision)."""
        units = 0
        while not answer.ready:
            units += self.prime_step(answer, model)
        while not answer.planned and not answer.sampling.finished:
            units += self.sample(answer, model, params, length_factor)
        return units

    def restart(self, answer: Answer, exchange: int, imitation: float) -> None:
        """The temperature or the imitation changed before the answer started: sample it again
        (from the primed state, as far as the priming has got)."""
        old = answer.sampling
        answer.planned.clear()
        answer.sampling = new = self._sampling(answer.reading, exchange, imitation, old.memory)
        new.state, new.base, new.primed = (old.base if old.base is not None else old.state), old.base, old.primed
        if new.memory is not None:
            new.memory.reset()

    def wants_more(self, answer: Answer, now: float) -> bool:
        if answer.sampling.finished or not answer.ready:
            return False
        lookahead = self.settings.lookahead_ms / 1000
        if answer.playback is None:
            return answer.sampling.sampled < SPEC_EVENTS or answer.sampling.beats * 60 / answer.reading.bpm < lookahead
        return not answer.planned or answer.planned[-1].onset < now + lookahead

    def progress(self, answer: Answer, length_factor: float, beats: float | None = None) -> float:
        """How far through its length the answer is: by its last onset (beats) or its events."""
        target = max(answer.length() * length_factor, 1e-9)
        if self.settings.response_unit == "events":
            return answer.sampling.sampled / target
        return (answer.sampling.beats if beats is None else beats) / target

    def sample(self, answer: Answer, model: Any, params: SamplingParams, length_factor: float) -> int:
        """Sample the answer's next event and step the model with it (two units)."""
        s, d = self.settings, answer.sampling
        target = answer.length() * length_factor
        limit = HARD_STOP if s.phrase_ending else 1.0  # (HARD_STOP is 1: an answer's length is a cut either way)
        if d.sampled >= s.max_response_events or (d.sampled and s.response_unit == "events" and self.progress(answer, length_factor) >= limit):
            d.finished, d.finished_target = True, target
            return 0
        # The range is the hard mask; the key (answer.reading.mask) a rule (realtime.processors.key).
        guide = self.guide(answer, length_factor)
        if d.memory is not None:  # the session memory's mix, under the answer's own rules (near the end: the performer's endings)
            guide = d.memory.bend(guide, s.phrase_ending and self.progress(answer, length_factor) >= CADENCE_FROM)
        row = model.sample_event(d.state, d.rng, params, self.range_mask, guide)
        if int(row[PITCH]) >= BOS:  # only with a mask allowing nothing else; end the answer
            d.finished = True
            return 1
        offset = float(self._time_values[int(row[OFFSET])])
        new_onset = d.sampled == 0 or offset > 0
        beats = 0.0 if d.sampled == 0 else d.beats + offset
        beyond = d.sampled and s.response_unit == "beats" and self.progress(answer, length_factor, beats) >= limit
        if (d.closing and new_onset) or beyond:  # the ending's chord is complete, or it is long enough
            d.finished, d.finished_target = True, target
            return 1
        state = model.step(d.state, row)
        model_velocity = float(self._velocity_values[int(row[VELOCITY])])
        d.model_velocity_sum += model_velocity
        progress = self.progress(answer, length_factor, beats)  # the call's dynamics, shaped (realtime.dynamics)
        velocity = answer_velocity(answer.reading.dynamics, s.follow_velocity, model_velocity, d.model_velocity_sum / (d.sampled + 1), progress, beats, s.rule_dynamics)
        pitch = int(row[PITCH])
        msg = mido.Message("note_on", channel=self.channel, note=pitch, velocity=velocity)
        duration = float(self._time_values[max(int(row[DURATION]), 1)])
        planned = Planned(row, state, Note(pitch, beats, duration, velocity), msg)
        if answer.playback is not None:
            planned.onset = answer_time(answer.playback, beats, velocity, s)
        d.take(pitch, beats, duration, new_onset)
        answer.planned.append(planned)
        if d.memory is not None:
            d.memory.push(row)
        d.state = state
        if s.phrase_ending and self._ends_phrase(answer, pitch, duration, self.progress(answer, length_factor)):
            d.closing = True
        return 2

    def _ends_phrase(self, answer: Answer, pitch: int, duration: float, progress: float) -> bool:
        """This note ends the answer: it is near its length, on a beat, a tonic-triad tone of the
        call's key (when known) and ENDING_BEATS long or more; or the answer is at its length,
        wherever the note falls (real answers end on a cadence in a few bars out of ten, not in
        every one: waiting for the tonic up to 1.5 times the length made improv's the ones that
        did, and waiting for a beat at the length still ended folk's 2.3x as often as real)."""
        if progress >= 1.0:  # at its length it ends where it is, as a real next two bars do
            return True
        if not EARLY_ENDING or progress < CADENCE_FROM or not on_beat(answer.sampling.beats):
            return False
        if answer.reading.tonality is not None and not tonic_triad(answer.reading.tonality)[pitch]:
            return False
        return duration >= ENDING_BEATS

    def guide(self, answer: Answer, length_factor: float = 1.0) -> Guide:
        """The answer's bends on each head (``realtime.guide``), the cadence once it is near its end."""
        cadence = self.settings.phrase_ending and self.progress(answer, length_factor) >= CADENCE_FROM
        guide = answer_guide(answer, self._time_values, cadence, self.processors[min(answer.reading.voice, len(self.processors) - 1)])
        # Timing: every onset on the performer's grid (sixteenths, triplets), the first on a beat
        # (or a downbeat) of the call's grid, so the model's own sense of the beat is the performer's.
        # Only on a heard grid (a pulse from the call): with a fixed tempo the voice keeps its own rhythm.
        first = answer.sampling.sampled == 0
        position = None if answer.reading.last_pos is None else answer.reading.last_pos if first else answer.sampling.beats
        # entry: bar, the model's first note on the downbeat; a strong beat is chosen in time alone
        bar = entry_period(self.settings, answer.reading.pulse, answer.reading.tempo_source) if first and self.settings.entry == "bar" else None
        on_grid = landing_mask(self._time_values, position, first, bar)
        if on_grid is None:
            return guide

        def timed(field: int, row: np.ndarray, logits: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
            logits, mask = guide(field, row, logits, mask)
            if field == OFFSET:
                grid = on_grid[: len(logits)]
                mask = grid if mask is None else (mask & grid if (mask & grid).any() else mask)
            return logits, mask

        return timed

    # ---- starting ---------------------------------------------------------------------------------

    def commit(self, answer: Answer, call: Any, context: ModelContext, length_factor: float) -> None:
        """The call has ended: what the answer's preparation assumed becomes true (the call's rows
        at the estimated tempo, the state primed from the window), and its length is fitted."""
        if answer.reading.call_rows is not None:
            for e, row in zip(call.events, answer.reading.call_rows):
                e.row = row
            context.pos = answer.reading.pos_after_call
        if answer.reading.rows is not None:
            context.primed_from(len(answer.reading.rows), answer.sampling.base)
        context.cancel_reprime()
        if answer.reading.pulse is not None:
            self.tempo.keep(answer.reading.pulse)
        self.memory.hear([e.row for e in call.events], call.last_activity)  # learned in the think slices to come
        self.fit_length(answer, length_factor)

    def fit_length(self, answer: Answer, length_factor: float) -> None:
        """The length knob may have moved since the speculation: cut what is too long, or let a
        finished answer go on."""
        target = answer.length() * length_factor * (HARD_STOP if self.settings.phrase_ending else 1.0)
        if self.settings.response_unit == "events":
            while len(answer.planned) > max(1, round(target)):
                answer.planned.pop()
        else:
            while len(answer.planned) > 1 and answer.planned[-1].note.start >= target:
                answer.planned.pop()
        if len(answer.planned) < answer.sampling.sampled:
            answer.sampling.finished = True
            answer.sampling.state = answer.planned[-1].state
        elif answer.sampling.finished and not answer.sampling.closing and target > answer.sampling.finished_target * (HARD_STOP if self.settings.phrase_ending else 1.0):
            answer.sampling.finished = False
        answer.sampling.sampled = len(answer.planned)
        answer.sampling.beats = answer.planned[-1].note.start if answer.planned else 0.0

    def first_note_time(self, answer: Answer, decided: float, first_onset: float, clock_grid: Grid | None, length_factor: float = 1.0) -> tuple[Playback, str]:
        """The answer's playback on the performer's grid (``realtime.entry``), its length fitted
        to the bar line it ends on where the grid has one."""
        playback, name = place_answer(self.settings, answer, decided, first_onset, clock_grid)
        if playback.length is not None:
            answer.playback = playback  # (fit_length reads the length from it)
            self.fit_length(answer, length_factor)
        return playback, name
