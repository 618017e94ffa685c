"""The real-time improviser: call and response over MIDI messages. Pure: no ports, no clock.

The caller (the serve loop, a test, the demo) owns time. It hands every incoming message to
``on_message(msg, now)``, asks ``due(now)`` for the messages whose send time has come (each with
its exact scheduled time), sleeps until ``next_deadline()``, and, when nothing is due soon, lets
the engine do model work ahead of time with ``think(now, units)`` (one unit = one model step or
one sampled event, a fraction of a millisecond).

The engine puts together parts that each own their data: ``Performer`` (keys, pedal, notes not
yet heard), ``Call`` (the phrase and the rules that end it), ``Quantiser`` (seconds -> rows),
``ModelContext`` (the window and the running state), ``Planner`` (the answer), ``Output``
(sounding notes and their note-offs), ``Controls``, ``ClockFollower`` and ``EchoFilter``.

How an exchange goes:

1. Listening. Each performer note becomes one event row once its key is released (offset from
   the previous event on the beat grid at the current tempo; notes struck within
   ``serve.chord_ms`` form a chord, lowest pitch first, as in the corpus). ``think`` feeds each
   row to the model, so the state follows the performance event by event.
2. When the performer falls quiet (all keys and the pedal up), ``think`` prepares the answer
   speculatively: tempo, key, texture and register of the call, a re-prime of the model from
   the last ``window`` events when needed, and the first notes sampled ahead. A new note throws
   it away.
3. The call ends after the silence threshold, on the end-of-call controller, or at the maximum
   length. The prepared answer starts on the call's beat grid (``answer_grid_beats``): the wait
   is musical, the answer is ready at the decision.
4. Responding. Notes leave at exact times computed from their sampled offsets; ``think`` keeps
   sampling ``lookahead`` ahead. A performer note stops the answer at once (barge-in), also while
   it waits for its first grid point: every sounding note gets its note-off now and the note
   begins the next call. A note due too long ago (the machine stalled) is dropped, or the rest of
   the answer moved later (``serve.late_policy``): never a burst of late notes.

Times given to ``on_message`` are arrival stamps, which may lie slightly before a time already
given to ``due``/``think``. Input timing uses the stamp; what the engine sends in reaction is
never scheduled before a message it has already handed out.

Safety: every note_on has a note_off on every path (end, barge-in, panic, model error, an error
inside ``due``, ``shutdown``); improv's echoes through a loopback are recognised; a key with no
note-off is released after ``stuck_note_s`` of no activity; anything else (sysex, aftertouch,
clock, junk) never disturbs it.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

import mido

from improv.model.sampling import SamplingParams
from improv.realtime.calls import Call, end_deadlines, end_reason, quiet_enough, threshold_s
from improv.realtime.clock_follower import ClockFollower
from improv.realtime.context import ModelContext
from improv.realtime.controls import SUSTAIN, Action, Controls
from improv.realtime.echo import EchoFilter
from improv.realtime.output import Output, Timed
from improv.realtime.performer import InNote, Performer
from improv.realtime.planner import Answer, Planner
from improv.realtime.quantiser import Quantiser
from improv.realtime.report import Exchange, Recorder
from improv.settings.load import check_section
from improv.settings.sections import ServeSettings

SPEC_DELAY_S = 0.15  # prepare the answer once the silence has lasted this long (or a third of the threshold)
LISTEN, RESPOND = "listening", "responding"

# A DAW's transport messages: where its song (and so its beat) is.
_TRANSPORT: dict[str, Callable[[ClockFollower, mido.Message], None]] = {
    "start": lambda clock, msg: clock.start(),
    "continue": lambda clock, msg: clock.resume(),
    "stop": lambda clock, msg: clock.stop(),
    "songpos": lambda clock, msg: clock.song_position(msg.pos),
}


class Voice(NamedTuple):
    """A model the engine can answer with, and the name the status line gives it."""

    name: str
    model: Any


class Engine:
    """Call and response over MIDI messages; see the module docstring. Not thread-safe: one caller.

    ``voices``: one step model, or several ``Voice``s to switch between (``serve.cc_voice``,
    Program Change); they must share one tokenizer. ``voice`` is the one that starts.
    """

    def __init__(
        self,
        voices: Any,
        settings: ServeSettings | None = None,
        params: SamplingParams = SamplingParams(),
        seed: int = 0,
        recorder: Recorder | None = None,
        voice: int = 0,
    ) -> None:
        self.voices: list[Voice] = list(voices) if isinstance(voices, (list, tuple)) else [Voice("", voices)]
        self.settings = s = settings or ServeSettings()
        check_section("serve", s)  # built in code (dataclasses.replace) skips the loader's checks
        self.tokenizer = self.voices[0].model.tokenizer
        if any(v.model.tokenizer != self.tokenizer for v in self.voices):
            raise ValueError("every voice must share one tokenizer (vocabulary)")
        self.voice = voice
        self.params = params
        self.seed = seed
        self.recorder = recorder
        self.bpm = s.bpm
        self.tempo_source = "config"
        self.length_factor = 1.0
        self.imitation = s.imitation
        self.errors: list[str] = []
        self.mode = LISTEN
        self._closed = False
        self._clock = ClockFollower()
        self._echo = EchoFilter(s.echo_ms / 1000, s.echo_probe_s)
        self._controls = Controls(s, len(self.voices))
        self._performer = Performer(s.stuck_note_s, s.chord_ms / 1000)
        self._quantiser = Quantiser(self.tokenizer)
        self._context = ModelContext(self.model, s.window)
        self._planner = Planner(s, self._quantiser, s.channel - 1, seed)
        self._output = Output(s.channel - 1, self._echo, recorder)
        self._call: Call | None = None
        self._answer: Answer | None = None
        self._exchanges = 0
        self._reports: list[Exchange] = []
        self._started: Exchange | None = None
        self._decided: Exchange | None = None
        self._cooldown_until = -math.inf  # after a model error, no model work until then

    @property
    def model(self) -> Any:
        return self.voices[self.voice].model

    @property
    def temperature(self) -> float:
        return self.params.temperature

    # ---- the loop's API ------------------------------------------------------------------------

    def on_message(self, msg: mido.Message, now: float) -> None:
        """One incoming message that arrived at ``now`` (possibly a little before the last time
        given to ``due``/``think``: input is stamped on arrival, handled later)."""
        if self._closed:
            return
        kind = msg.type
        if kind == "clock":
            self._clock.tick(now)
            if self.settings.follow_clock and self._clock.bpm is not None:
                self._set_bpm(self._clock.bpm, "clock")
            return
        if kind in _TRANSPORT:
            _TRANSPORT[kind](self._clock, msg)
            return
        if kind == "sysex":
            self._echo.is_probe(msg, now)
            return
        if kind == "program_change":
            self._act(self._controls.program(msg.program), now)
            return
        if kind not in ("note_on", "note_off", "control_change"):
            return  # aftertouch, pitchwheel, ...: not ours
        if self._echo.is_echo(msg, now):
            return
        # listen_channel picks the performer's notes and pedal; improv's own controls count on
        # every channel: a controller box sends on its own.
        listen = self.settings.listen_channel
        if listen and msg.channel != listen - 1 and (kind != "control_change" or msg.control == SUSTAIN):
            return
        if kind == "note_on" and msg.velocity > 0:
            self._note_on(msg.channel, msg.note, msg.velocity, now)
        elif kind in ("note_on", "note_off"):
            self._note_off(msg.channel, msg.note, now)
        elif msg.control == SUSTAIN:
            self._performer.pedal(msg.value >= 64, now)
            if self._call is not None:
                self._call.touch(now)
        else:
            self._act(self._controls.control(msg.control, msg.value), now)

    def due(self, now: float) -> list[Timed]:
        """Messages whose time has come (scheduled time <= now), oldest first, with those times.
        An error in here never leaves a note sounding: everything is silenced and reported."""
        out: list[Timed] = []
        if self._closed:
            return out
        try:
            self._due(now, out)
        except Exception as exc:  # a bug must not leave notes hanging: silence, report, go on listening
            self.errors.append(f"engine error: {type(exc).__name__}: {exc}")
            self._finish_answer("error")
            self._forget_call()
            self._output.silence(now)
            self._output.flush(math.inf, out)
        return out

    def _due(self, now: float, out: list[Timed]) -> None:
        if self.tempo_source == "clock" and not self._clock.active(now):
            self.tempo_source = "clock, held"  # the clock stopped: keep its last tempo
        released = self._performer.release_stuck(now)
        self._recorded_offs(released)
        if released and self._call is not None:
            self._call.touch(max(n.off for n in released if n.off is not None))
        if self.mode == LISTEN and self._call is not None:
            reason = end_reason(self._call, self._performer.quiet(), self.settings, self.bpm, now)
            if reason is not None:
                self._end_call(now, reason)
        if self.mode == RESPOND:
            self._play(now, out)
        elif not self._output.sounding:
            probe = self._echo.probe_due(now)  # only while improv is silent: a sysex takes wire time
            if probe is not None:
                self._output.send(probe, max(now, self._output.sent_until), out)
        self._output.flush(now, out)
        self._output.take_urgent(out)

    def next_deadline(self) -> float | None:
        """The earliest time at which ``due`` will have something to do (a send, a call's end)."""
        if self._closed:
            return None
        times: list[float | None] = [self._output.urgent[0][0] if self._output.urgent else None, self._output.next_off()]
        a = self._answer
        if self.mode == RESPOND and a is not None and a.planned:
            times.append(a.planned[0].onset)
        times.append(self._performer.stuck_deadline())
        if self.mode == LISTEN and self._call is not None:
            times.extend(end_deadlines(self._call, self._performer.quiet(), self.settings, self.bpm))
        if self.mode == LISTEN and not self._output.sounding:
            times.append(self._echo.next_probe_at())
        known = [t for t in times if t is not None]
        return min(known) if known else None

    def next_wakeup(self) -> float | None:
        """``next_deadline``, or earlier when ``think`` will have work then (a chord closing, the
        moment to start preparing the answer)."""
        deadline = self.next_deadline()
        if self._closed:
            return deadline
        soft: list[float] = []
        closes = self._performer.group_closes_at()
        if closes is not None:
            soft.append(closes)
        if self.mode == LISTEN and self._answer is None and self._quiet():
            soft.append(self._speculate_at())
        if not soft:
            return deadline
        work = max(min(soft), self._cooldown_until)
        return work if deadline is None else min(deadline, work)

    def wants_think(self, now: float) -> bool:
        return self._next_work(now) is not None

    def think(self, now: float, units: int = 8) -> int:
        """Model work ahead of time, at most about ``units`` steps/samples; returns the units done."""
        done = 0
        while done < units and not self._closed:
            work = self._next_work(now)
            if work is None:
                break
            try:
                done += work(now)
            except Exception as exc:  # a model failure must not leave notes hanging or kill the session
                self._model_failed(now, exc)
                break
        return done

    def panic(self, now: float) -> None:
        """Silence everything now (note-offs, then All Notes Off on every channel); forget the call."""
        self._stop_answer(now, "panic")
        self._output.silence(now)
        self._output.all_notes_off(now)
        self._forget_call()
        self._performer.forget()

    def shutdown(self, now: float) -> list[Timed]:
        """The last messages: every sounding note's note-off, then All Notes Off per channel. Then silent."""
        if self._closed:
            return []
        self._stop_answer(now, "shutdown")
        out: list[Timed] = []
        self._output.flush(now, out)
        out += self._output.close(now)
        if self.recorder is not None:
            self.recorder.close(max(now, self._output.sent_until))
        self._closed = True
        return out

    def input_lost(self, now: float) -> None:
        """The input port vanished: keys held now will send no note-off; release them."""
        released = self._performer.release_all(now)
        self._recorded_offs(released)
        if self._call is not None:
            self._call.touch(now)

    def output_changed(self) -> None:
        """The output port was reopened: probe for a loopback again."""
        self._echo.probe_soon()

    def take_reports(self) -> list[Exchange]:
        """Exchanges that ended since the last call."""
        out, self._reports = self._reports, []
        return out

    def take_started(self) -> Exchange | None:
        """The exchange whose first answer note was in the last ``due`` batch, if any."""
        ex, self._started = self._started, None
        return ex

    def take_decided(self) -> Exchange | None:
        """The exchange whose call ended in the last ``due`` call, if any (the loop times the
        model work done there: ``sync_s``)."""
        ex, self._decided = self._decided, None
        return ex

    def take_errors(self) -> list[str]:
        out, self.errors = self.errors, []
        return out

    # Introspection for tests, the demo and the monitor.

    @property
    def state(self) -> Any:
        return self._context.state

    def window_rows(self) -> Any:
        return self._context.rows()

    @property
    def sounding(self) -> list[int]:
        return sorted(self._output.sounding)

    @property
    def answer(self) -> Answer | None:
        return self._answer

    @property
    def loopback(self) -> bool:
        return self._echo.loopback

    # ---- input --------------------------------------------------------------------------------

    def _note_on(self, channel: int, pitch: int, velocity: int, now: float) -> None:
        if self.mode == RESPOND:
            self._stop_answer(now, "barge-in")
        self._output.silence(now)  # the last notes of a finished answer may still ring: they stop too
        self._answer = None  # a speculative answer no longer fits
        note, ended = self._performer.note_on(channel, pitch, velocity, now)
        if self._call is None:
            self._call = Call(first_onset=now, last_activity=now)
        self._call.add(note)
        if self.recorder is not None:
            self.recorder.note_on("performer", channel, pitch, velocity, now)

    def _note_off(self, channel: int, pitch: int, now: float) -> None:
        if self.recorder is not None:
            self.recorder.note_off("performer", channel, pitch, now)
        if self._performer.note_off(channel, pitch, now) is not None and self._call is not None:
            self._call.touch(now)

    def _recorded_offs(self, notes: Sequence[InNote]) -> None:
        if self.recorder is not None:
            for note in notes:
                self.recorder.note_off("performer", note.channel, note.pitch, note.off if note.off is not None else note.onset)

    def _act(self, action: Action | None, now: float) -> None:
        if action is None:
            return
        if action.kind == "panic":
            self.panic(now)
        elif action.kind == "end_call":
            if self._call is not None and self.mode == LISTEN:
                self._call.end_request = now
        elif action.kind == "temperature":
            self.params = SamplingParams(action.value, self.params.top_k, self.params.top_p)
            self._resample()
        elif action.kind == "length":
            self.length_factor = action.value
        elif action.kind == "imitation":
            self.imitation = action.value
            self._resample()
        elif action.kind == "voice":
            self.set_voice(int(action.value))

    def set_voice(self, index: int) -> None:
        """Answer with another voice from the next answer on (the one playing finishes as it
        began): the new voice is primed from the window in the background."""
        if index == self.voice or not 0 <= index < len(self.voices):
            return
        self.voice = index
        self._context.forget_state(self.model)
        if self._answer is not None and self._answer.start is None:
            self._answer = None  # prepared with the other voice

    def _resample(self) -> None:
        a = self._answer
        if a is not None and a.start is None:
            self._planner.restart(a, self._exchanges)

    def _set_bpm(self, bpm: float, source: str) -> None:
        self.bpm = min(max(bpm, 10.0), 400.0)
        self.tempo_source = source

    # ---- the call ends -------------------------------------------------------------------------

    def _end_call(self, now: float, reason: tuple[str, float]) -> None:
        call = self._call
        assert call is not None
        self._recorded_offs(self._performer.release_all(now))  # keys still down: their length so far
        call.end_request = None
        if call.note_count < self.settings.min_call_notes:
            self._forget_call()
            return
        units = 0
        try:
            units += self._hear(now, force=True)
            a = self._answer
            if a is None or a.version != self._context.version:
                a = self._answer = self._prepare(now)
            while not a.ready:
                units += self._planner.prime_step(a, self.model)
            while not a.planned and not a.finished:
                units += self._planner.sample(a, self.model, self.params, self.length_factor)
        except Exception as exc:  # see think()
            self._model_failed(now, exc)
            return
        self._start_answer(now, reason, units)

    def _start_answer(self, now: float, reason: tuple[str, float], sync_units: int) -> None:
        a, call = self._answer, self._call
        assert a is not None and call is not None
        # What the speculation assumed becomes true: the tempo, the call's rows at that tempo.
        if a.bpm != self.bpm or a.tempo_source == "estimate":
            self._set_bpm(a.bpm, a.tempo_source)
        if a.call_rows is not None:
            for e, row in zip(call.events, a.call_rows):
                e.row = row
            self._context.pos = a.pos_after_call
        if a.rows is not None:
            self._context.primed_from(len(a.rows), a.base)
        self._context.cancel_reprime()
        self._planner.fit_length(a, self.length_factor)
        clock_grid = self._clock.beat_grid(now) if self.settings.follow_clock else None
        a.start, grid = self._planner.first_note_time(reason[1], call.first_onset, a.bpm, clock_grid)
        for p in a.planned:
            p.onset = a.start + p.beats * 60 / a.bpm
        call_end = max(n.off if n.off is not None else now for n in call.notes)
        self._exchanges += 1
        a.exchange = Exchange(
            number=self._exchanges,
            end_reason=reason[0],
            call_notes=call.note_count,
            call_beats=(call_end - call.first_onset) * a.bpm / 60,
            bpm=a.bpm,
            tempo_source=a.tempo_source,
            key=a.key,
            decided_at=reason[1],
            threshold_s=threshold_s(self.settings, self.bpm) if reason[0] == "silence" else 0.0,
            grid=grid,
            sync_units=sync_units,
            voice=self.voices[a.voice].name,
        )
        if self.recorder is not None:
            self.recorder.tempo(call.first_onset, a.bpm, f"call {self._exchanges}: {a.key or 'any key'}, {a.bpm:.0f} bpm")
            self.recorder.tempo(a.start, a.bpm, f"answer {self._exchanges}" + (f" ({a.exchange.voice})" if a.exchange.voice else ""))
        self._decided = a.exchange
        self._call = None
        self.mode = RESPOND
        if not a.planned:
            self._finish_answer("finished")

    # ---- the answer plays ------------------------------------------------------------------------

    def _play(self, now: float, out: list[Timed]) -> None:
        a = self._answer
        assert a is not None and a.exchange is not None
        late_s = self.settings.late_ms / 1000
        while a.planned and a.planned[0].onset <= now:
            p = a.planned[0]
            if now - p.onset > late_s:  # the machine stalled: no burst of late notes
                if self.settings.late_policy == "shift" or a.exchange.first_note_at is None:  # an answer never loses its start
                    self._shift(a, now - p.onset)
                    continue
                a.planned.popleft()
                a.late_dropped += 1
                self._context.adopt(p.row, p.state, p.onset, p.onset, 0.0, p.pitch, p.velocity)
                continue
            a.planned.popleft()
            duration_s = p.duration_beats * 60 / a.bpm
            if a.max_voices == 1:  # a single line: the note sounding now ends as this one starts
                for pitch in list(self._output.sounding):
                    self._output.end_at(pitch, p.onset)
            self._output.start(p.msg, p.onset, duration_s, out)
            # The note is now part of the performance: window, running state, grid position.
            self._context.adopt(p.row, p.state, p.onset, p.onset, duration_s, p.pitch, p.velocity)
            a.exchange.response_notes += 1
            if a.exchange.first_note_at is None:
                a.exchange.first_note_at = p.onset
                self._started = a.exchange
        a.exchange.late_dropped = a.late_dropped
        if a.finished and not a.planned:
            self._finish_answer("finished")

    def _shift(self, a: Answer, delay: float) -> None:
        """Move the rest of the answer ``delay`` later (late_policy: shift)."""
        a.start = (a.start or 0.0) + delay
        for p in a.planned:
            p.onset = (p.onset or 0.0) + delay
        assert a.exchange is not None
        a.exchange.late_shifted_s += delay

    def _finish_answer(self, how: str) -> None:
        a = self._answer
        if a is not None and a.exchange is not None:
            a.exchange.ended = how
            self._reports.append(a.exchange)
        self._answer = None
        self.mode = LISTEN

    def _stop_answer(self, now: float, how: str) -> None:
        """End the answer now: unsent notes dropped, sounding ones get their note-off now."""
        if self.mode != RESPOND:
            return
        self._output.silence(now)
        self._finish_answer(how)

    # ---- the model, ahead of time ---------------------------------------------------------------

    def _next_work(self, now: float) -> Callable[[float], int] | None:
        if self._closed or now < self._cooldown_until:
            return None
        a = self._answer
        if self.mode == RESPOND:
            if a is not None and self._planner.wants_more(a, now):
                return lambda now: self._planner.sample(a, self.model if a.voice == self.voice else self.voices[a.voice].model, self.params, self.length_factor)
            return None
        if self._performer.ready_group(now) is not None:
            return lambda now: self._hear(now)
        if self._quiet():
            if a is None or a.version != self._context.version:
                if now < self._speculate_at():
                    return None
                return lambda now: self._speculate(now)
            if not a.ready:
                return lambda now: self._planner.prime_step(a, self.model)
            if self._planner.wants_more(a, now):
                return lambda now: self._planner.sample(a, self.model, self.params, self.length_factor)
            return None
        if self._context.wants_reprime():
            return lambda now: self._context.reprime_step()
        return None

    def _quiet(self) -> bool:
        return quiet_enough(self._call, self._performer, self.settings)

    def _speculate_at(self) -> float:
        """When to start preparing the answer: not in every short gap between notes."""
        assert self._call is not None
        return self._call.last_activity + min(SPEC_DELAY_S, threshold_s(self.settings, self.bpm) / 3)

    def _speculate(self, now: float) -> int:
        self._answer = self._prepare(now)
        return 1

    def _prepare(self, now: float) -> Answer:
        assert self._call is not None
        return self._planner.prepare(self._call, self._context, self.voice, self.bpm, self.tempo_source, self._clock.active(now), self._exchanges, now)

    def _hear(self, now: float, force: bool = False) -> int:
        """Feed released performer notes to the model, chord by chord; returns the steps done."""
        steps = 0
        while True:
            group = self._performer.ready_group(now, force)
            if group is None:
                return steps
            self._performer.take(group)
            for i, note in enumerate(group):
                self._hear_note(note, chord=i > 0)
                steps += 1
            if not force:
                return steps

    def _hear_note(self, note: InNote, chord: bool) -> None:
        assert note.off is not None
        call, ctx = self._call, self._context
        if call is not None and not call.events:
            call.pos_before = ctx.pos
        offset, pos = self._quantiser.offset(note.onset, ctx.pos, chord, self.bpm)
        row = self._quantiser.row(note.pitch, offset, note.off - note.onset, note.velocity, self.bpm)
        event = ctx.hear(row, pos, note.onset, note.off - note.onset, note.pitch, note.velocity, chord)
        if call is not None:
            call.events.append(event)

    # ---- failures and resets --------------------------------------------------------------------

    def _forget_call(self) -> None:
        self._call = None
        if self.mode == LISTEN:
            self._answer = None

    def _model_failed(self, now: float, exc: Exception) -> None:
        """The model raised: stop any answer (its notes get their note-offs), forget the call,
        start the state from zero, and leave the model alone for a second (no hot error loop)."""
        self.errors.append(f"model error: {type(exc).__name__}: {exc}")
        self._stop_answer(now, "error")
        self._answer = None
        self._performer.drop_released()  # the failed notes are skipped
        self._forget_call()
        self._context.forget_state()
        self._cooldown_until = now + 1.0
