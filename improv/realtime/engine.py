"""The real-time improviser: call and response over MIDI messages. Pure: no ports, no clock.

The caller (the serve loop, a test, the demo) owns time. It hands every incoming message to
``on_message(msg, now)``, asks ``due(now)`` for the messages whose send time has come (each with
its exact scheduled time), sleeps until ``next_deadline()``, and, when nothing is due soon, lets
the engine do model work ahead of time with ``think(now, units)`` (one unit = one model step or
one sampled event, a fraction of a millisecond).

How an exchange goes:

1. Listening. Each performer note becomes one event row once its key is released (offset from
   the previous event on the beat grid at the current tempo; notes starting within half a grid
   step form a chord, lowest pitch first, as in the corpus). ``think`` feeds each row to the
   model, so the state follows the performance event by event.
2. When the performer falls quiet (all keys and the pedal up), ``think`` prepares the answer
   speculatively: tempo and key estimates, a re-prime of the model from the last ``window``
   events (exactly ``prime(window)``), and the first notes sampled ahead. A new note throws it away.
3. The call ends after the silence threshold, on the end-of-call controller, or at the maximum
   length. The prepared answer starts on the call's beat grid: its first note is due at the first
   grid point (``answer_grid_beats``) at or after the decision, so it keeps the performer's pulse.
   The grid is the MIDI clock's beat when a DAW's transport places it, else the call's own pulse:
   its first onset on a beat, at the answer's tempo. The wait is musical: the answer is ready at
   the decision.
4. Responding. Notes leave at exact times computed from their sampled offsets; ``think`` keeps
   sampling ``lookahead`` ahead. A performer note stops the answer at once (barge-in), also while
   it waits for its first grid point: every sounding note gets its note-off now and the note
   begins the next call.

Times given to ``on_message`` are arrival stamps, which may lie slightly before a time already
given to ``due``/``think`` (the loop drains input after thinking). Input timing uses the stamp;
what the engine sends in reaction (note-offs of a barge-in, a panic) is never scheduled before a
message it has already handed out.

Safety: every note_on has a note_off on every path (end, barge-in, panic, model error,
``shutdown``); incoming echoes of what improv sent are ignored; a key with no note-off is released
after ``stuck_note_s``; any other message (sysex, aftertouch, clock, ...) never disturbs it.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import mido
import numpy as np

from improv.settings.sections import ServeSettings
from improv.settings.load import check_section
from improv.realtime.clock_follower import ClockFollower
from improv.realtime.echo import EchoFilter
from improv.music.rhythm import estimate_bpm, next_grid_point
from improv.music.keys import estimate_key, key_name, scale_pitch_classes
from improv.realtime.report import Exchange, Recorder  # the engine fills them (and `from improv.engine import Recorder` keeps working)
from improv.model.sampling import SamplingParams
from improv.music.tokenizer import BOS, DURATION, N_PITCH, OFFSET, PITCH, TOKEN_DTYPE, VELOCITY, Tokenizer

SUSTAIN = 64  # the sustain pedal controller
ALL_NOTES_OFF = 123
_DRIFT_SLACK = 14  # the running state may absorb window + this many events before a background re-prime
_SPEC_EVENTS = 4  # events sampled ahead during the silence, at least
_SPEC_DELAY_S = 0.15  # speculate once the silence has lasted this long (or a third of the threshold)

Timed = tuple[float, mido.Message]


# ---------------------------------------------------------------------------------------------
# Internal records


@dataclass(eq=False)
class _InNote:
    """A performer's note: onset known at note_on, duration at note_off (or when forced)."""

    pitch: int
    channel: int
    onset: float
    velocity: int
    off: float | None = None


@dataclass(eq=False)
class _WinEvent:
    """An event of the rolling window: its row as the model saw it, and its real timing."""

    index: int  # running count of events since the session began
    row: np.ndarray
    onset: float = 0.0  # seconds
    duration: float = 0.0  # seconds
    pitch: int = BOS
    velocity: int = 0
    chord: bool = False  # joined the previous event's onset (offset 0 by grouping)


@dataclass(eq=False)
class _Call:
    first_onset: float
    last_activity: float
    notes: list[_InNote] = field(default_factory=list)
    events: list[_WinEvent] = field(default_factory=list)  # committed, in order
    pos_before: float | None = None  # grid position before the call's first event


@dataclass(eq=False)
class _Planned:
    """A sampled answer note, not sent yet."""

    row: np.ndarray
    state: Any  # the model state after stepping this row
    beats: float  # onset in beats after the answer's first note
    duration_beats: float
    pitch: int
    velocity: int
    msg: mido.Message  # its note_on, built while sampling (building one costs ~15 us: not in ``due``)
    onset: float | None = None  # seconds, once the answer has started


@dataclass(eq=False)
class _Response:
    """An answer: prepared speculatively during the silence, then played."""

    version: int  # the window version it was prepared from
    bpm: float
    tempo_source: str
    key: str
    rng: np.random.Generator
    mask: np.ndarray
    call_velocity: float
    target: float  # beats or events, before the length knob
    rows: np.ndarray | None  # rows to prime from (None: the running state is already primed)
    call_rows: list[np.ndarray] | None  # the call's rows re-quantised at the estimated tempo
    pos_after_call: float | None
    state: Any = None  # after the last sampled row
    base: Any = None  # after priming, before the first sampled row
    primed: int = 0  # rows of ``rows`` already stepped
    planned: deque = field(default_factory=deque)
    sampled: int = 0
    beats: float = 0.0  # onset of the last sampled event, in beats after the first
    model_velocity_sum: float = 0.0
    finished: bool = False  # no more events will be sampled
    finished_target: float = math.inf  # the length that finished it (a longer one resumes sampling)
    start: float | None = None
    exchange: Exchange | None = None

    @property
    def ready(self) -> bool:
        return self.base is not None


LISTEN, RESPOND = "listening", "responding"

# A DAW's transport messages: where its song (and so its beat) is.
_TRANSPORT: dict[str, Callable[[ClockFollower, mido.Message], None]] = {
    "start": lambda clock, msg: clock.start(),
    "continue": lambda clock, msg: clock.resume(),
    "stop": lambda clock, msg: clock.stop(),
    "songpos": lambda clock, msg: clock.song_position(msg.pos),
}


# ---------------------------------------------------------------------------------------------
# The engine


class Engine:
    """Call and response over MIDI messages; see the module docstring. Not thread-safe: one caller."""

    def __init__(
        self,
        model: Any,
        settings: ServeSettings | None = None,
        params: SamplingParams = SamplingParams(),
        seed: int = 0,
        recorder: Recorder | None = None,
    ) -> None:
        self.model = model
        self.settings = s = settings or ServeSettings()
        check_section("serve", s)  # built in code (dataclasses.replace) skips the loader's checks
        self.tokenizer: Tokenizer = model.tokenizer
        self.params = params
        self.seed = seed
        self.recorder = recorder
        self.channel = s.channel - 1
        self.bpm = s.bpm
        self.tempo_source = "config"
        self.length_factor = 1.0
        self.errors: list[str] = []
        self.mode = LISTEN
        self._closed = False
        self._spb = self.tokenizer.steps_per_beat
        self._time_values = self.tokenizer.time_values
        self._velocity_values = self.tokenizer.velocity_values
        self._max_steps = self.tokenizer.max_steps
        self._last_offset = len(self._time_values) - 1
        self._clock = ClockFollower()
        self._echo = EchoFilter(s.echo_ms / 1000)
        # The pitch mask without a key: notes in range, never BOS/EOS (improv decides when an answer ends).
        # Note-offs built once: ``due`` only picks them (a mido.Message costs ~15 us to build).
        self._off_msgs = [mido.Message("note_off", channel=self.channel, note=p, velocity=0) for p in range(128)]
        self._range_mask = np.zeros(N_PITCH, dtype=bool)
        self._range_mask[s.lowest_pitch : s.highest_pitch + 1] = True  # never empty: config checks lowest <= highest
        # Input
        self._held: dict[tuple[int, int], _InNote] = {}
        self._pending: list[_InNote] = []  # released or held, not yet fed to the model; onset order
        self._pedal_since: float | None = None
        self._call: _Call | None = None
        self._end_request: float | None = None
        # Model state and the rolling window (it starts with BOS: a session is a piece)
        self._window: deque[_WinEvent] = deque(maxlen=s.window)
        self._n_events = 0
        self._version = 0  # bumps whenever the window changes
        self._pos: float | None = None  # grid position (seconds) of the last event's onset
        self._state = model.initial_state()
        self._seen = 0  # rows the running state absorbed since it was zero
        self._append_window(self.tokenizer.special(BOS))
        self._state = model.step(self._state, self._window[-1].row)
        self._seen = 1
        self._reprime: tuple[list[np.ndarray], int, Any, int] | None = None  # rows, done, state, last index
        # Output
        self._response: _Response | None = None
        self._exchanges = 0
        self._offs: list[tuple[float, int, int]] = []  # heap of (time, seq, pitch)
        self._sounding: dict[int, int] = {}  # pitch -> seq of the note_off that will end it
        self._seq = 0
        self._urgent: list[Timed] = []
        self._sent_until = -math.inf  # the latest time of a message handed out: reactions never go before it
        self._reports: list[Exchange] = []
        self._started: Exchange | None = None
        self._decided: Exchange | None = None
        self._cooldown_until = -math.inf  # after a model error, no model work until then

    # ---- public API ---------------------------------------------------------------------------

    @property
    def temperature(self) -> float:
        return self.params.temperature

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
        if kind not in ("note_on", "note_off", "control_change"):
            return  # sysex, aftertouch, pitchwheel, program change, ...: not ours
        if self._echo.is_echo(msg, now):
            return
        # listen_channel picks the performer's notes and pedal; improv's own controls (temperature,
        # length, end of call, panic) count on every channel: a controller box sends on its own.
        listen = self.settings.listen_channel
        if listen and msg.channel != listen - 1 and (kind != "control_change" or msg.control == SUSTAIN):
            return
        if kind == "note_on" and msg.velocity > 0:
            self._note_on(msg.channel, msg.note, msg.velocity, now)
        elif kind in ("note_on", "note_off"):
            self._note_off(msg.channel, msg.note, now)
        else:
            self._control(msg.control, msg.value, now)

    def due(self, now: float) -> list[Timed]:
        """Messages whose time has come (scheduled time <= now), oldest first, with those times."""
        out: list[Timed] = []
        if self._closed:
            return out
        self._follow_clock(now)
        self._release_stuck(now)
        if self.mode == LISTEN and self._call is not None:
            reason = self._call_end_reason(now)
            if reason is not None:
                self._end_call(now, reason)
        if self.mode == RESPOND:
            self._emit_response(now, out)
        self._flush_offs(now, out)
        if self._urgent:
            out.extend(self._urgent)
            self._sent_until = max(self._sent_until, max(t for t, _ in self._urgent))
            self._urgent.clear()
        return out

    def next_deadline(self) -> float | None:
        """The earliest time at which ``due`` will have something to do (a send, a call's end)."""
        if self._closed:
            return None
        times: list[float] = []
        if self._urgent:
            times.append(self._urgent[0][0])
        while self._offs and self._sounding.get(self._offs[0][2]) != self._offs[0][1]:
            heapq.heappop(self._offs)  # superseded note-offs
        if self._offs:
            times.append(self._offs[0][0])
        r = self._response
        if self.mode == RESPOND and r is not None and r.planned:
            times.append(r.planned[0].onset)
        for note in self._held.values():
            times.append(note.onset + self.settings.stuck_note_s)
        if self._pedal_since is not None:
            times.append(self._pedal_since + self.settings.stuck_note_s)
        if self.mode == LISTEN and self._call is not None:
            times.extend(t for t in self._call_end_times() if t is not None)
        return min(times) if times else None

    def next_wakeup(self) -> float | None:
        """``next_deadline``, or earlier when ``think`` will have work then (a chord closing, the
        moment to start preparing the answer)."""
        deadline = self.next_deadline()
        if self._closed:
            return deadline
        soft: list[float] = []
        if self._pending:
            first = self._pending[0]
            limit = first.onset + self._half_step_s()
            if all(n.off is not None for n in self._pending if n.onset < limit):
                soft.append(limit)
        if self.mode == LISTEN and self._response is None and self._quiet():
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
        now = max(now, self._sent_until)
        self._stop_response(now, "panic")
        self._silence(now)
        self._urgent.extend((now, mido.Message("control_change", channel=ch, control=ALL_NOTES_OFF, value=0)) for ch in range(16))
        for t, msg in self._urgent:
            self._echo.sent(msg, t)
        self._forget_call()

    def shutdown(self, now: float) -> list[Timed]:
        """The last messages: every pending note-off and All Notes Off per channel. Then silent."""
        if self._closed:
            return []
        self._stop_response(now, "shutdown")
        self.panic(now)
        out = self.due(now)
        if self.recorder is not None:
            self.recorder.close(now)
        self._closed = True
        return out

    def input_lost(self, now: float) -> None:
        """The input port vanished: keys held now will send no note-off; release them."""
        for note in self._held.values():
            note.off = now
            if self.recorder is not None:
                self.recorder.note_off("performer", note.channel, note.pitch, now)
        self._held.clear()
        self._pedal_since = None
        if self._call is not None:
            self._call.last_activity = now

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

    # Introspection for tests and the demo.

    @property
    def state(self) -> Any:
        return self._state

    def window_rows(self) -> np.ndarray:
        return np.stack([e.row for e in self._window]).astype(TOKEN_DTYPE)

    @property
    def sounding(self) -> list[int]:
        return sorted(self._sounding)

    # ---- input --------------------------------------------------------------------------------

    def _note_on(self, channel: int, pitch: int, velocity: int, now: float) -> None:
        if self.mode == RESPOND:
            self._stop_response(now, "barge-in")
        self._silence(now)  # the last notes of a finished answer may still ring: they stop too
        self._response = None  # a speculative answer no longer fits
        key = (channel, pitch)
        if key in self._held:  # struck again without a note-off: the old one ends here
            self._held.pop(key).off = now
        note = _InNote(pitch, channel, now, velocity)
        self._held[key] = note
        self._pending.append(note)
        if self._call is None:
            self._call = _Call(first_onset=now, last_activity=now)
        self._call.notes.append(note)
        self._call.last_activity = now
        if self.recorder is not None:
            self.recorder.note_on("performer", channel, pitch, velocity, now)

    def _note_off(self, channel: int, pitch: int, now: float) -> None:
        if self.recorder is not None:
            self.recorder.note_off("performer", channel, pitch, now)
        note = self._held.pop((channel, pitch), None)
        if note is None:
            return  # released already (stuck, forced, panic) or never seen
        note.off = now
        if self._call is not None:
            self._call.last_activity = max(self._call.last_activity, now)

    def _control(self, control: int, value: int, now: float) -> None:
        s = self.settings
        if control == SUSTAIN:
            if value >= 64 and self._pedal_since is None:
                self._pedal_since = now
            elif value < 64 and self._pedal_since is not None:
                self._pedal_since = None
                if self._call is not None:
                    self._call.last_activity = max(self._call.last_activity, now)
        elif control == s.cc_panic:
            if value >= 64:
                self.panic(now)
        elif control == s.cc_end_call:
            if value >= 64 and self._call is not None and self.mode == LISTEN:
                self._end_request = now
        elif control == s.cc_temperature:
            lo, hi = s.temperature_min, s.temperature_max
            t = lo * (hi / lo) ** (value / 127)
            self.params = SamplingParams(t, self.params.top_k, self.params.top_p)
            if self._response is not None and self._response.start is None:
                self._restart_sampling(self._response)
        elif control == s.cc_length:
            self.length_factor = 2.0 ** ((value - 64) / 32)

    # ---- time-driven input: stuck keys, clock, end of call --------------------------------------

    def _follow_clock(self, now: float) -> None:
        if self.tempo_source == "clock" and not self._clock.active(now):
            self.tempo_source = "clock, held"  # the clock stopped: keep its last tempo

    def _set_bpm(self, bpm: float, source: str) -> None:
        self.bpm = min(max(bpm, 10.0), 400.0)
        self.tempo_source = source

    def _release_stuck(self, now: float) -> None:
        limit = self.settings.stuck_note_s
        for key, note in list(self._held.items()):
            if now >= note.onset + limit:
                del self._held[key]
                note.off = note.onset + limit
                if self._call is not None:
                    self._call.last_activity = max(self._call.last_activity, note.off)
                if self.recorder is not None:
                    self.recorder.note_off("performer", note.channel, note.pitch, note.off)
        if self._pedal_since is not None and now >= self._pedal_since + limit:
            if self._call is not None:
                self._call.last_activity = max(self._call.last_activity, self._pedal_since + limit)
            self._pedal_since = None

    def _threshold_s(self) -> float:
        s = self.settings
        return max(s.silence_ms / 1000, s.silence_beats * 60 / self.bpm)

    def _silence_deadline(self) -> float | None:
        if self._call is None or self._held or self._pedal_since is not None:
            return None
        return self._call.last_activity + self._threshold_s()

    def _call_end_times(self) -> tuple[float | None, float | None, float | None]:
        """(end-of-call controller, maximum length, silence) deadlines, None where not set."""
        assert self._call is not None
        limit = None
        if self.settings.max_call_beats > 0:
            limit = self._call.first_onset + self.settings.max_call_beats * 60 / self.bpm
        return self._end_request, limit, self._silence_deadline()

    def _call_end_reason(self, now: float) -> tuple[str, float] | None:
        control, limit, silence = self._call_end_times()
        if control is not None:
            return "control", control
        if silence is not None and now >= silence:
            return "silence", silence
        if limit is not None and now >= limit:
            return "max length", limit
        return None

    def _end_call(self, now: float, reason: tuple[str, float]) -> None:
        call = self._call
        assert call is not None
        for note in self._held.values():  # keys still down: their length so far (a later note-off is ignored)
            note.off = now
        self._held.clear()
        self._end_request = None
        if len(call.notes) < self.settings.min_call_notes:
            self._forget_call(keep_pending=True)
            return
        units = 0
        try:
            units += self._commit(now, force=True)
            r = self._response
            if r is None or r.version != self._version:
                r = self._response = self._prepare(now)
            while not r.ready:
                units += self._prime_step(r)
            while not r.planned and not r.finished:
                units += self._sample(r)
        except Exception as exc:  # see think()
            self._model_failed(now, exc)
            return
        self._start_response(now, reason, units)

    # ---- the model, ahead of time ---------------------------------------------------------------

    def _next_work(self, now: float) -> Callable[[float], int] | None:
        if self._closed or now < self._cooldown_until:
            return None
        r = self._response
        if self.mode == RESPOND:
            if r is not None and self._wants_more(r, now):
                return lambda now: self._sample(r)
            return None
        if self._pending and self._commit_ready(now):
            return lambda now: self._commit(now)
        if self._quiet():
            if r is None or r.version != self._version:
                if now < self._speculate_at():
                    return None
                return lambda now: self._speculate_start(now)
            if not r.ready:
                return lambda now: self._prime_step(r)
            if self._wants_more(r, now):
                return lambda now: self._sample(r)
            return None
        if self._seen > self.settings.window + _DRIFT_SLACK or self._reprime is not None:
            return lambda now: self._reprime_step()
        return None

    def _quiet(self) -> bool:
        """The call may be over: it has enough notes, every key and the pedal are up, all fed."""
        c = self._call
        return (
            c is not None
            and not self._held
            and self._pedal_since is None
            and not self._pending
            and len(c.notes) >= self.settings.min_call_notes
        )

    def _speculate_at(self) -> float:
        """When to start preparing the answer: not in every short gap between notes."""
        assert self._call is not None
        return self._call.last_activity + min(_SPEC_DELAY_S, self._threshold_s() / 3)

    def _half_step_s(self) -> float:
        return 0.5 * 60 / (self.bpm * self._spb)

    def _commit_ready(self, now: float) -> bool:
        first = self._pending[0]
        if now < first.onset + self._half_step_s():
            return False  # another note may still join its chord
        limit = first.onset + self._half_step_s()
        return all(n.off is not None for n in self._pending if n.onset < limit)

    def _commit(self, now: float, force: bool = False) -> int:
        """Feed released performer notes to the model, chord by chord; returns the steps done."""
        steps = 0
        while self._pending and (force or self._commit_ready(now)):
            limit = self._pending[0].onset + self._half_step_s()
            group = [n for n in self._pending if n.onset < limit]
            if any(n.off is None for n in group):
                break
            del self._pending[: len(group)]
            for i, note in enumerate(sorted(group, key=lambda n: n.pitch)):
                self._commit_note(note, chord=i > 0)
                steps += 1
            if not force:
                break
        return steps

    def _commit_note(self, note: _InNote, chord: bool) -> None:
        assert note.off is not None
        call = self._call
        if call is not None and not call.events:
            call.pos_before = self._pos
        offset, pos = self._offset_class(note.onset, self._pos, chord, self.bpm)
        row = self._row(note.pitch, offset, note.off - note.onset, note.velocity, self.bpm)
        state = self.model.step(self._state, row)  # before any mutation: a failure leaves no trace
        self._pos = pos
        self._state = state
        self._seen += 1
        event = self._append_window(row, note.onset, note.off - note.onset, note.pitch, note.velocity, chord)
        if call is not None:
            call.events.append(event)

    def _offset_class(self, onset: float, pos: float | None, chord: bool, bpm: float) -> tuple[int, float]:
        """Grid offset class from the previous event, and the new grid position (error feedback)."""
        if pos is None:
            return 0, onset
        if chord:
            return 0, pos
        steps = (onset - pos) * bpm / 60 * self._spb
        if steps > self._max_steps + 0.5:  # a long silence: shortened to the longest offset
            return self._last_offset, onset
        cls = self.tokenizer.quantize_time(steps / self._spb)
        return cls, pos + self._time_values[cls] * 60 / bpm

    def _row(self, pitch: int, offset: int, duration_s: float, velocity: int, bpm: float) -> np.ndarray:
        tok = self.tokenizer
        return np.array(
            [pitch, offset, tok.quantize_time(duration_s * bpm / 60, minimum=1), tok.quantize_velocity(velocity)],
            dtype=TOKEN_DTYPE,
        )

    def _append_window(self, row: np.ndarray, onset: float = 0.0, duration: float = 0.0, pitch: int = BOS, velocity: int = 0, chord: bool = False) -> _WinEvent:
        event = _WinEvent(self._n_events, row, onset, duration, pitch, velocity, chord)
        self._window.append(event)
        self._n_events += 1
        self._version += 1
        return event

    def _reprime_step(self) -> int:
        """Background: re-prime the running state from the window so its drift stays bounded."""
        if self._reprime is None:
            rows = [e.row for e in self._window]
            self._reprime = (rows, 0, self.model.initial_state(), self._window[-1].index)
        rows, done, state, last = self._reprime
        if done < len(rows):
            self._reprime = (rows, done + 1, self.model.step(state, rows[done]), last)
            return 1
        newer = [e.row for e in self._window if e.index > last]  # committed while priming
        for row in newer:
            state = self.model.step(state, row)
        self._state, self._seen, self._reprime = state, len(rows) + len(newer), None
        return len(newer) + 1

    def _speculate_start(self, now: float) -> int:
        self._response = self._prepare(now)
        return 1

    def _prepare(self, now: float) -> _Response:
        """A new answer for the call as it stands: tempo, key, what to prime from, sampling setup."""
        s = self.settings
        call = self._call
        assert call is not None
        self._reprime = None
        bpm, source = self.bpm, self.tempo_source
        if s.estimate_tempo and not (s.follow_clock and self._clock.active(now)):
            estimate = estimate_bpm([n.onset for n in call.notes], bpm)
            if estimate is not None and abs(estimate - bpm) > 0.5:
                bpm, source = estimate, "estimate"
        call_rows = None
        pos_after = self._pos
        if bpm != self.bpm and call.events:
            call_rows, pos_after = self._requantize(call, bpm)
            if all(np.array_equal(a, e.row) for a, e in zip(call_rows, call.events)):
                call_rows = None  # same rows: the running state stays valid
        rows = None
        if call_rows is not None or self._seen > len(self._window) or self._seen > s.window:
            by_index = {} if call_rows is None else {e.index: r for e, r in zip(call.events, call_rows)}
            rows = np.stack([by_index.get(e.index, e.row) for e in self._window])
        mask = self._range_mask
        key = ""
        if s.keep_key:
            weights = np.zeros(12)
            for n in call.notes:
                weights[n.pitch % 12] += max((n.off or now) - n.onset, 0.05)
            tonic, minor = estimate_key(weights)
            allowed = np.zeros(12, dtype=bool)
            allowed[scale_pitch_classes(tonic, minor)] = True
            allowed[weights > 0] = True  # what the performer played is in the key by definition
            pcs = np.zeros(N_PITCH, dtype=bool)
            pcs[:128] = allowed[np.arange(128) % 12]
            if (mask & pcs).any():
                mask = mask & pcs
            key = key_name(tonic, minor)
        call_end = max(n.off or now for n in call.notes)
        if s.response_unit == "events":
            target = s.response_length or len(call.notes)
        else:
            target = s.response_length or (call_end - call.first_onset) * bpm / 60
        r = _Response(
            version=self._version,
            bpm=bpm,
            tempo_source=source,
            key=key,
            rng=np.random.default_rng((self.seed, self._exchanges)),
            mask=mask,
            call_velocity=float(np.mean([n.velocity for n in call.notes])),
            target=target,
            rows=rows,
            call_rows=call_rows,
            pos_after_call=pos_after,
        )
        if rows is None:
            r.state = r.base = self._state
        else:
            r.state = self.model.initial_state()
        return r

    def _requantize(self, call: _Call, bpm: float) -> tuple[list[np.ndarray], float | None]:
        """The call's rows as they would be at ``bpm`` (the tempo estimated from the call itself)."""
        pos = call.pos_before
        rows = []
        for e in call.events:
            offset, pos = self._offset_class(e.onset, pos, e.chord, bpm)
            rows.append(self._row(e.pitch, offset, e.duration, e.velocity, bpm))
        return rows, pos

    def _prime_step(self, r: _Response) -> int:
        assert r.rows is not None
        r.state = self.model.step(r.state, r.rows[r.primed])
        r.primed += 1
        if r.primed == len(r.rows):
            r.base = r.state
        return 1

    def _restart_sampling(self, r: _Response) -> None:
        """The temperature changed before the answer started: sample its notes again."""
        if r.base is not None:
            r.state = r.base
        r.planned.clear()
        r.sampled = 0
        r.beats = 0.0
        r.model_velocity_sum = 0.0
        r.finished = False
        r.rng = np.random.default_rng((self.seed, self._exchanges))

    def _target(self, r: _Response) -> float:
        return r.target * self.length_factor

    def _wants_more(self, r: _Response, now: float) -> bool:
        if r.finished or not r.ready:
            return False
        if r.start is None:
            return r.sampled < _SPEC_EVENTS or r.beats * 60 / r.bpm < self.settings.lookahead_ms / 1000
        return not r.planned or r.planned[-1].onset < now + self.settings.lookahead_ms / 1000

    def _sample(self, r: _Response) -> int:
        """Sample the answer's next event and step the model with it (two units)."""
        s = self.settings
        target = self._target(r)
        if r.sampled >= s.max_response_events or (s.response_unit == "events" and r.sampled >= max(1, round(target))):
            r.finished, r.finished_target = True, target
            return 0
        row = self.model.sample_event(r.state, r.rng, self.params, r.mask)
        if int(row[PITCH]) >= BOS:  # only with a mask allowing nothing else; end the answer
            r.finished = True
            return 1
        beats = 0.0 if r.sampled == 0 else r.beats + float(self._time_values[int(row[OFFSET])])
        if s.response_unit == "beats" and r.sampled > 0 and beats >= target:
            r.finished, r.finished_target = True, target
            return 1
        state = self.model.step(r.state, row)
        model_velocity = float(self._velocity_values[int(row[VELOCITY])])
        r.model_velocity_sum += model_velocity
        shift = s.follow_velocity * (r.call_velocity - r.model_velocity_sum / (r.sampled + 1))
        velocity = int(min(max(round(model_velocity + shift), 1), 127))
        pitch = int(row[PITCH])
        msg = mido.Message("note_on", channel=self.channel, note=pitch, velocity=velocity)
        planned = _Planned(row, state, beats, float(self._time_values[max(int(row[DURATION]), 1)]), pitch, velocity, msg)
        if r.start is not None:
            planned.onset = r.start + beats * 60 / r.bpm
        r.planned.append(planned)
        r.state = state
        r.sampled += 1
        r.beats = beats
        return 2

    # ---- the answer -----------------------------------------------------------------------------

    def _start_response(self, now: float, reason: tuple[str, float], sync_units: int) -> None:
        r = self._response
        call = self._call
        assert r is not None and call is not None
        # What the speculation assumed becomes true: the tempo, the call's rows at that tempo.
        if r.bpm != self.bpm or r.tempo_source == "estimate":
            self._set_bpm(r.bpm, r.tempo_source)
        if r.call_rows is not None:
            for e, row in zip(call.events, r.call_rows):
                e.row = row
            self._pos = r.pos_after_call
        if r.rows is not None:
            self._seen = len(r.rows)
        self._reprime = None
        # The length knob may have moved since the speculation: cut or continue.
        target = self._target(r)
        if self.settings.response_unit == "events":
            while len(r.planned) > max(1, round(target)):
                r.planned.pop()
        else:
            while len(r.planned) > 1 and r.planned[-1].beats >= target:
                r.planned.pop()
        if len(r.planned) < r.sampled:
            r.finished = True
            r.state = r.planned[-1].state
        elif r.finished and target > r.finished_target:
            r.finished = False
        r.sampled = len(r.planned)
        r.beats = r.planned[-1].beats if r.planned else 0.0
        start, grid = self._answer_start(reason[1], call.first_onset, r.bpm, now)
        r.start = start
        for p in r.planned:
            p.onset = start + p.beats * 60 / r.bpm
        call_end = max(n.off or now for n in call.notes)
        self._exchanges += 1
        r.exchange = Exchange(
            number=self._exchanges,
            end_reason=reason[0],
            call_notes=len(call.notes),
            call_beats=(call_end - call.first_onset) * r.bpm / 60,
            bpm=r.bpm,
            tempo_source=r.tempo_source,
            key=r.key,
            decided_at=reason[1],
            threshold_s=self._threshold_s() if reason[0] == "silence" else 0.0,
            grid=grid,
            sync_units=sync_units,
        )
        self._decided = r.exchange
        self._call = None
        self.mode = RESPOND
        if not r.planned:
            self._finish_response("finished")

    def _answer_start(self, decided: float, first_onset: float, bpm: float, now: float) -> tuple[float, str]:
        """When the answer's first note goes, and what it is aligned to ("" = at once): the first
        point of the beat grid at or after the decision.

        The grid: the MIDI clock's beats when a followed clock's transport places them; else the
        call's own pulse, its first onset (the arrival stamp) on a beat, at the answer's tempo.
        Why the onset and not the running grid position ``_pos``: ``_pos`` carries the previous
        answer's grid into the call, and a long gap before the call is quantised coarsely (a
        call 5 s after a note sat 100 ms off its real onset), which would put the answer off the
        beat the performer actually played.
        """
        beats = self.settings.answer_grid_beats
        if beats <= 0:
            return decided, ""
        name = "beat" if beats == 1 else "half beat" if beats == 0.5 else f"{beats:g}-beat grid"
        clock = self._clock.beat_grid(now) if self.settings.follow_clock else None
        if clock is not None:
            origin, beat_s = clock
            name += " of the MIDI clock"
        else:
            origin, beat_s = first_onset, 60 / bpm
        return next_grid_point(decided, origin, beats * beat_s), name

    def _emit_response(self, now: float, out: list[Timed]) -> None:
        r = self._response
        assert r is not None
        while r.planned and r.planned[0].onset <= now:
            p = r.planned.popleft()
            self._flush_offs(p.onset, out)
            if p.pitch in self._sounding:  # the same key again: end the sounding one first
                self._send_off(p.pitch, p.onset, out)
            self._send(p.msg, p.onset, out)
            self._seq += 1
            self._sounding[p.pitch] = self._seq
            heapq.heappush(self._offs, (p.onset + p.duration_beats * 60 / r.bpm, self._seq, p.pitch))
            if self.recorder is not None:
                self.recorder.note_on("improv", self.channel, p.pitch, p.velocity, p.onset)
            # The note is now part of the performance: window, running state, grid position.
            self._append_window(p.row, p.onset, p.duration_beats * 60 / r.bpm, p.pitch, p.velocity)
            self._state = p.state
            self._seen += 1
            self._pos = p.onset
            ex = r.exchange
            assert ex is not None
            ex.response_notes += 1
            if ex.first_note_at is None:
                ex.first_note_at = p.onset
                self._started = ex
        if r.finished and not r.planned:
            self._finish_response("finished")

    def _finish_response(self, how: str) -> None:
        r = self._response
        if r is not None and r.exchange is not None:
            r.exchange.ended = how
            self._reports.append(r.exchange)
        self._response = None
        self.mode = LISTEN

    def _stop_response(self, now: float, how: str) -> None:
        """End the answer now: unsent notes dropped, sounding ones get their note-off now."""
        if self.mode != RESPOND:
            return
        self._silence(now)
        self._finish_response(how)

    def _silence(self, now: float) -> None:
        now = max(now, self._sent_until)  # a stamp in the past must not end a note before it began
        for pitch in list(self._sounding):
            self._seq += 1
            self._sounding[pitch] = self._seq
            heapq.heappush(self._offs, (now, self._seq, pitch))

    def _flush_offs(self, until: float, out: list[Timed]) -> None:
        while self._offs and self._offs[0][0] <= until:
            t, seq, pitch = heapq.heappop(self._offs)
            if self._sounding.get(pitch) == seq:
                self._send_off(pitch, t, out)

    def _send_off(self, pitch: int, t: float, out: list[Timed]) -> None:
        del self._sounding[pitch]
        self._send(self._off_msgs[pitch], t, out)
        if self.recorder is not None:
            self.recorder.note_off("improv", self.channel, pitch, t)

    def _send(self, msg: mido.Message, t: float, out: list[Timed]) -> None:
        self._echo.sent(msg, t)
        out.append((t, msg))
        if t > self._sent_until:
            self._sent_until = t

    # ---- failures and resets --------------------------------------------------------------------

    def _forget_call(self, keep_pending: bool = False) -> None:
        self._call = None
        self._end_request = None
        self._response = None if self.mode == LISTEN else self._response
        if not keep_pending:
            self._held.clear()
            self._pending.clear()
            self._pedal_since = None

    def _model_failed(self, now: float, exc: Exception) -> None:
        """The model raised: stop any answer (its notes get their note-offs), forget the call,
        start the state from zero, and leave the model alone for a second (no hot error loop)."""
        self.errors.append(f"model error: {type(exc).__name__}: {exc}")
        self._stop_response(now, "error")
        self._response = None
        self._reprime = None
        self._pending = [n for n in self._pending if n.off is None]  # the failed notes are skipped
        self._forget_call(keep_pending=True)
        self._state = self.model.initial_state()
        self._seen = len(self._window) + _DRIFT_SLACK + 1  # past the slack: re-primed in the background and before the next answer
        self._cooldown_until = now + 1.0
