"""The engine's play-along side (serve.mode, MIDI learn): the hooks ``Engine`` mixes in, kept here
so that the engine stays a router. The work itself is ``modes.Band``'s; these route between it
and the engine's parts (responder, listener, output, controls). Pure: no ports, no clock.
"""

from __future__ import annotations

import math
from typing import Any

from improv.realtime.controls import learn_request
from improv.realtime.modes import MODES
from improv.realtime.output import Timed

LISTEN = "listening"


class PlayAlong:
    """Mixed into ``Engine``: uses its ``_band``, ``_responder``, ``_listener``, ``_output``,
    ``_controls``, ``_clock``, ``settings``, ``bpm``, ``mode``, ``_act``, ``_end_call``, ``_forget_call``."""

    _band: Any
    _responder: Any
    _listener: Any
    _output: Any
    _controls: Any
    _clock: Any
    _echo: Any
    _planner: Any
    settings: Any
    bpm: float
    _heard: tuple[Any, int, tuple[float, float] | None] = (None, 0, None)  # (call, its notes, grid) last heard

    def _key_down(self, msg: Any, now: float) -> None:
        """The performer strikes a key: a barge-in (whatever improv plays stops), except that an
        accompaniment goes on under them; the call grows."""
        self._band.performer_down(msg.note, msg.velocity, now)
        self._responder.stop(now, "barge-in")
        if self._band.mode != "accompany":
            self._output.silence(now)  # the last notes of a finished answer may still ring: they stop too
        self._responder.drop_speculation()  # a prepared answer no longer fits
        self._listener.key_down(msg.channel, msg.note, msg.velocity, now)

    def _key_up(self, msg: Any, now: float) -> None:
        self._band.performer_up(msg.note, now, self.bpm)
        self._listener.key_up(msg.channel, msg.note, now)

    def _sysex(self, msg: Any, now: float) -> None:
        name = learn_request(self.settings, tuple(msg.data))
        if name is not None:
            self._controls.learn(name)
        else:
            self._echo.is_probe(msg, now)

    def _act_play_along(self, action: Any, now: float) -> None:
        if action.kind == "mode":
            self.set_mode(MODES[int(action.value)], now)
        elif action.kind == "mutate":
            self._band.mutate = action.value

    play_mode = property(lambda self: self._band.mode)
    band_playing = property(lambda self: self._band.playing)
    mutate = property(lambda self: self._band.mutate)

    def learn(self, name: str) -> None:
        """MIDI learn: the next controller message that arrives is bound to control ``name``."""
        self._controls.learn(name)

    def controls_saved(self) -> dict[str, dict[str, int]]:
        """What the controls file keeps: learned bindings and the knobs' last values."""
        return {"bindings": dict(self._controls.bindings), "values": dict(self._controls.values)}

    def restore_controls(self, saved: dict[str, dict[str, int]], now: float, keep: frozenset[str] = frozenset()) -> None:
        """Bindings and the knobs' last values from an earlier session; switches are not replayed,
        nor the controls in ``keep`` (what the command line asked for wins over last time)."""
        c = self._controls
        c.bindings.update(saved.get("bindings", {}))
        for name, value in saved.get("values", {}).items():
            c.values[name] = value
            if name not in ("panic", "end_call", "forget") and name not in keep and c.number(name) >= 0:
                self._act(c.control(c.number(name), value), now)

    def set_mode(self, mode: str, now: float) -> None:
        """answer | accompany | loop | solo, from now on: whatever improv plays stops now (every
        note gets its note-off), the call in progress is kept (what was played still counts)."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r} (one of {', '.join(MODES)})")
        if mode != self._band.mode:
            self._responder.stop(now, "mode")
            self._responder.drop_speculation()
            self._output.silence(now)
            self._band.set_mode(mode)

    # ---- play along (realtime/modes.py does the work) ------------------------------------------

    def _holds_call(self) -> bool:
        """Accompanying: the call (what the performer plays) ends only once the bar after it is
        kept; then it is answered (``serve.after: answer``) or forgotten."""
        return self._band.mode == "accompany" and self._band.keeping_time

    def _call_ended(self, now: float, reason: tuple[str, float]) -> None:
        mode = self._band.mode
        if mode in ("answer", "loop"):
            self._end_call(now, reason)
            return
        if mode == "accompany" and self.settings.after == "answer" and reason[0] != "max":
            self._end_call(now, (reason[0], max(reason[1], now)))  # decided now: after the bar kept
            return
        call = self._listener.call
        if call is not None and mode == "solo":
            self._band.anchor = call.first_onset  # the set's beat: where the solo takes up again
        self._listener.release_all(now)
        self._forget_call()

    def _play_answer(self, now: float, out: list[Timed]) -> None:
        a = self.answer
        looping = self._band.mode == "loop" and a is not None
        if looping and self._band.looper.source != id(a):  # a new answer: loop will repeat it
            self._band.looper.answer_started(a.playback.start, id(a))
        if looping:  # what loop will repeat: the answer's notes as they go out
            for p in a.planned:
                if p.onset is None or p.onset > now:
                    break
                self._band.looper.record(p.note)
        self._responder.play(now, out)
        if looping and not self._responder.responding and a.playback is not None and a.playback.exchange is not None and a.playback.exchange.ended == "finished":
            self._band.looper.answer_finished(a.reading.bpm)

    def _heard_grid(self, now: float) -> tuple[float, float] | None:
        """Accompany without a clock: the performer's beat (a beat's time, seconds per beat) heard
        from the passage so far (``realtime.tempo``, the set's tempo as its prior), again at each
        new note; None until four notes give a pulse (the band then keeps the set's tempo)."""
        call = self._listener.call
        if call is None:
            return self._heard[2]
        if self._heard[0] is not call or self._heard[1] != call.note_count:
            pulse = self._planner.tempo.hear(call, now) if call.note_count >= 4 else None
            old = self._heard[2] if self._heard[0] is call else None
            grid = (pulse.origin, pulse.beat_s) if pulse is not None else old
            if pulse is not None and old is not None:
                # The same tempo at another level or phase (plain eighths fit 100 and 200 alike):
                # the band keeps its beat, level and phase, its period the new estimate's.
                octave = round(math.log2(old[1] / pulse.beat_s))
                if abs(old[1] / pulse.beat_s / 2.0**octave - 1) < 0.04:
                    grid = (old[0] + round((now - old[0]) / old[1]) * old[1], pulse.beat_s * 2.0**octave)
            self._heard = (call, call.note_count, grid)
        return self._heard[2]

    def _play_along(self, now: float, out: list[Timed]) -> None:
        band = self._band
        grid = self._external_grid(now)  # a Link session's or a MIDI clock's beat
        clock_grid = (grid.beat, grid.beat_s) if grid is not None else None
        if clock_grid is None and band.mode == "accompany" and self.settings.estimate_tempo:
            clock_grid = self._heard_grid(now)
        if band.mode == "solo" and not band.soloist.playing and not band.hushed and self._listener.call is None and not band.keys and self.mode == LISTEN:
            band.start_solo(now, self.bpm, band.anchor if band.anchor else now, clock_grid)
        band.play(now, out, self.bpm, clock_grid)

