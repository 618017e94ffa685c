"""The real-time improviser: call and response over MIDI messages. Pure: no ports, no clock.

The caller (the serve loop, a test, the demo) owns time: it hands every incoming message to
``on_message(msg, now)``, asks ``due(now)`` for the messages whose send time has come (each with its
exact time), sleeps until ``next_deadline()``, and lets the engine work ahead with ``think(now, units)``
(one unit = one model step or sampled event, a fraction of a millisecond) when nothing is due soon.

Parts that own their data: ``Listener`` (keys, pedal, the call, what the model hears), ``ModelContext``
(window, running state), ``Planner`` (the answer in preparation), ``Responder`` (the answer playing),
``Output`` (sounding notes), ``Controls`` (what each knob does: ``knobs.py``), ``ClockFollower``, ``EchoFilter``, and ``Band`` (play along:
accompany, loop, solo; hooks in ``playalong.py``); ``stops.py`` has every way it stops sounding. When the performer falls quiet the answer is
prepared, thrown away if they play on; the call ends on silence, a switch or its maximum length; the
answer starts on the call's beat grid; a performer note stops it (barge-in), a new call.

Input stamps may lie a little before a time already given to ``due``/``think``; nothing sent in
reaction is scheduled before a message already handed out. Every note_on has a note_off on every
path (end, barge-in, panic, model error, an error inside ``due``, ``shutdown``).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import mido

from improv.model.sampling import SamplingParams
from improv.realtime.answer import Answer
from improv.realtime.calls import threshold_s
from improv.realtime.clock_follower import ClockFollower
from improv.realtime.context import ModelContext, Voice
from improv.realtime.controls import SUSTAIN, Controls
from improv.realtime.echo import EchoFilter
from improv.realtime.knobs import Knobs
from improv.realtime.link_follower import FollowsLink, LinkFollower, LinkSource
from improv.realtime.listener import Listener
from improv.realtime.modes import Band
from improv.realtime.playalong import PlayAlong
from improv.realtime.output import Output, Timed
from improv.realtime.planner import Planner
from improv.realtime.quantiser import Quantiser
from improv.realtime.report import Exchange, Recorder
from improv.realtime.responder import Responder
from improv.realtime.stops import Stops
from improv.settings.load import check_section
from improv.settings.serve_section import ServeSettings

LISTEN, RESPOND = "listening", "responding"


class Engine(PlayAlong, FollowsLink, Stops, Knobs):
    """See the module docstring. Not thread-safe: one caller. ``voices``: one step model, or several
    ``Voice``s sharing one tokenizer (``serve.cc_voice``, Program Change); ``voice`` starts."""

    def __init__(self, voices: Any, settings: ServeSettings | None = None, params: SamplingParams = SamplingParams(), seed: int = 0, recorder: Recorder | None = None, voice: int = 0, link: LinkSource | None = None) -> None:
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
        self._closed = False
        self._clock = ClockFollower()
        self.link = LinkFollower(link) if link is not None else None  # an Ableton Link session (link_follower.py)
        self._echo = EchoFilter(s.echo_ms / 1000 if s.echo_probe else 0.0)
        self._controls = Controls(s, len(self.voices))
        quantiser = Quantiser(self.tokenizer)
        self._context = ModelContext(self.model, s.window)
        self._listener = Listener(s, self._context, quantiser, recorder)
        self._planner = Planner(s, quantiser, s.channel - 1, seed, [v.name for v in self.voices])
        self._output = Output(s.channel - 1, self._echo, recorder)
        self._responder = Responder(s, self._output, self._context, recorder)
        self._band = Band(s, self._output, self.tokenizer, seed)  # play along: accompany, loop, solo
        self._cooldown_until = -math.inf  # after a model error, no model work until then

    @property
    def model(self) -> Any:
        return self.voices[self.voice].model

    mode = property(lambda self: RESPOND if self._responder.responding else LISTEN)
    temperature = property(lambda self: self.params.temperature)
    memory = property(lambda self: self._planner.memory)  # the performer's idiom, learned (realtime/memory.py)

    # ---- the loop's API ------------------------------------------------------------------------

    def on_message(self, msg: mido.Message, now: float) -> None:
        """One incoming message that arrived at ``now`` (possibly a little before the last time
        given to ``due``/``think``: input is stamped on arrival, handled later)."""
        if self._closed:
            return
        kind = msg.type
        if self._clock.handle(msg, now):  # MIDI clock and a DAW's transport
            if kind == "clock" and self.settings.follow_clock and self._clock.bpm is not None and not self._follow_link(now):
                self._set_bpm(self._clock.bpm, "clock")
            return
        if kind == "sysex":
            self._sysex(msg, now)  # a loopback probe coming back, or the page's MIDI learn
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
            self._key_down(msg, now)  # playalong.py: a barge-in, except under an accompaniment
        elif kind in ("note_on", "note_off"):
            self._key_up(msg, now)
        elif msg.control == SUSTAIN:
            self._listener.pedal(msg.value >= 64, now)
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
            self._responder.finish("error")
            self._band.stop()
            self._forget_call()
            self._output.silence(now)
            self._output.flush(math.inf, out)
        return out

    def _due(self, now: float, out: list[Timed]) -> None:
        if not self._follow_link(now) and self.tempo_source == "clock" and not self._clock.active(now):
            self.tempo_source = "clock, held"  # the clock stopped: keep its last tempo
        self._released(self._listener.release_stuck(now, self._bar_s()), now)  # a lost note-off: the band stops keeping time too
        if self.mode == LISTEN and not self._holds_call():
            reason = self._listener.end_reason(now, self.bpm)
            if reason is not None:
                self._call_ended(now, reason)
        if self.mode == RESPOND:
            self._play_answer(now, out)
        self._play_along(now, out)
        if self.mode == LISTEN and not self._output.sounding:
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
        times.append(self._responder.next_note())
        times.append(self._band.next_time(self.bpm))
        bar_s = self._bar_s()
        times.extend(self._listener.deadlines(self.bpm, bar_s) if self.mode == LISTEN and not self._holds_call() else [self._listener.stuck_deadline(bar_s)])
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
        closes = self._listener.performer.group_closes_at()
        if closes is not None:
            soft.append(closes)
        if self.mode == LISTEN and self.answer is None and self._listener.quiet() and self._band.answers(self.settings.after):
            soft.append(self._listener.speculate_at(self.bpm))
        soft += [t for t in (self._band.work_at(self.bpm),) if t is not None]  # solo: the next event to sample
        if not soft:
            return deadline
        work = max(min(soft), self._cooldown_until)
        return work if deadline is None else min(deadline, work)

    def wants_think(self, now: float) -> bool:
        return self._next_work(now) is not None or self._may_learn()

    def _may_learn(self) -> bool:
        """Heard events wait while an answer that reads the memory is still being sampled: one
        answer reads the memory as it was prepared (the planner catches up before the next), so
        how the think slices fell never changes its notes."""
        a = self.answer
        reading = a is not None and a.sampling.memory is not None and not a.sampling.finished
        return bool(self.memory.pending) and not reading

    def think(self, now: float, units: int = 8) -> int:
        """Model work ahead of time, at most about ``units`` steps/samples; returns the units done."""
        done = 0
        while done < units and not self._closed:
            work = self._next_work(now) or (self.memory.absorb if self._may_learn() else None)  # learning: last
            if work is None:
                break
            try:
                done += work(now)
            except Exception as exc:  # a model failure must not leave notes hanging or kill the session
                self._model_failed(now, exc)
                break
        return done

    def take_reports(self) -> list[Exchange]:
        """Exchanges that ended since the last call."""
        return self._responder.take("reports", [])

    def take_started(self) -> Exchange | None:
        """The exchange whose first answer note was in the last ``due`` batch, if any."""
        return self._responder.take("started", None)

    def take_decided(self) -> Exchange | None:
        """The exchange whose call ended in the last ``due`` call, if any (the loop times the
        model work done there: ``sync_s``)."""
        return self._responder.take("decided", None)

    def take_errors(self) -> list[str]:
        out, self.errors = self.errors, []
        return out

    # Introspection for tests, the demo and the monitor.

    state = property(lambda self: self._context.state)
    sounding = property(lambda self: sorted(self._output.sounding))
    answer = property(lambda self: self._responder.answer)
    density = property(lambda self: self._planner.density)
    loopback = property(lambda self: self._echo.loopback)

    def window_rows(self) -> Any:
        return self._context.rows()

    # ---- input --------------------------------------------------------------------------------

    def _bar_s(self) -> float | None:
        """The performer's bar in seconds (a key held too long: ``serve.hold_bars``): ``bar_beats``
        beats of the set's tempo, as the band counts its bars; None while the set has none
        (estimating, and no call's tempo heard yet: serve.bpm is only a guess; the listener
        then counts the call's own)."""
        if self.tempo_source == "config" and self.settings.estimate_tempo:
            return None
        return self.settings.bar_beats * 60 / self.bpm

    def _set_bpm(self, bpm: float, source: str) -> None:
        self.bpm = min(max(bpm, 10.0), 400.0)
        self.tempo_source = source

    # ---- the call ends -------------------------------------------------------------------------

    def _end_call(self, now: float, reason: tuple[str, float]) -> None:
        call = self._listener.call
        assert call is not None
        self._listener.release_all(now)  # keys still down: their length so far
        call.end_request = None
        if call.note_count < self.settings.min_call_notes:
            self._forget_call()
            return
        units = 0
        try:
            units += self._listener.hear(now, self.bpm, force=True)
            a = self.answer
            if a is None or a.reading.version != self._context.version:
                a = self._responder.answer = self._prepare(now)
            units += self._planner.first_note(a, self.model, self.params, self.length_factor)
        except Exception as exc:  # see think()
            self._model_failed(now, exc)
            return
        self._start_answer(now, reason, units)

    def _start_answer(self, now: float, reason: tuple[str, float], sync_units: int) -> None:
        a, call = self.answer, self._listener.call
        assert a is not None and call is not None
        # What the speculation assumed becomes true: the tempo, the call's rows at that tempo.
        if a.reading.bpm != self.bpm or a.reading.tempo_source == "estimate":
            self._set_bpm(a.reading.bpm, a.reading.tempo_source)
        self._planner.commit(a, call, self._context, self.length_factor)
        a.playback, grid = self._planner.first_note_time(a, reason[1], call.first_onset, self._external_grid(now), self.length_factor)
        self._lead_link(a, now)  # leading a Link session: the performer's tempo (and bar) published
        threshold = threshold_s(self.settings, self.bpm) if reason[0] == "silence" else 0.0
        self._listener.call = None
        self._responder.start(a, call, reason, now, threshold, grid, sync_units, self.voices[a.reading.voice].name)

    # ---- the model, ahead of time ---------------------------------------------------------------

    def _next_work(self, now: float) -> Callable[[float], int] | None:
        if self._closed or now < self._cooldown_until:
            return None
        a = self.answer
        if self._band.wants_work(now, self.bpm):  # solo: the next event, a little ahead
            return lambda now: self._band.work(now, self.model, self.params, self.bpm)
        if self.mode == RESPOND:
            if a is not None and self._planner.wants_more(a, now):
                return lambda now: self._planner.sample(a, self.voices[a.reading.voice].model, self.params, self.length_factor)
            return None
        if self._listener.ready(now):
            return lambda now: self._listener.hear(now, self.bpm)
        if self._listener.quiet() and self._band.answers(self.settings.after):
            if a is None or a.reading.version != self._context.version:
                if now < self._listener.speculate_at(self.bpm):
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

    def _speculate(self, now: float) -> int:
        self._responder.answer = self._prepare(now)
        return 1

    def _prepare(self, now: float) -> Answer:
        assert self._listener.call is not None
        return self._planner.prepare(self._listener.call, self._context, self.voice, self.bpm, self.tempo_source, self._clock.active(now), self._responder.exchanges, now, self.imitation, self._external_grid(now))
