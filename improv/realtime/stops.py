"""Every way the engine stops sounding, outside an answer's own end: panic, shutdown, a lost
input or a port back, a model error, a call forgotten. Kept apart from ``engine.py`` (the router)
because each must leave no note on (every note_on its note_off, the band's and the recorder's
too), and one place shows that. Mixed into ``Engine``. Pure: no ports, no clock."""

from __future__ import annotations

from typing import Any

from improv.realtime.output import Timed


class Stops:
    """Mixed into ``Engine``: uses its ``_responder``, ``_band``, ``_output``, ``_listener``,
    ``_context``, ``recorder``, ``errors``, ``bpm``, ``_closed``, ``_cooldown_until``."""

    _responder: Any
    _band: Any
    _output: Any
    _listener: Any
    _context: Any
    recorder: Any
    errors: list[str]
    bpm: float
    _closed: bool
    _cooldown_until: float

    def panic(self, now: float) -> None:
        """Silence everything now (note-offs, then All Notes Off on every channel); forget the call."""
        self._responder.stop(now, "panic")
        self._band.stop()
        self._output.silence(now)
        self._output.all_notes_off(now)
        self._forget_call()
        self._listener.performer.forget()

    def shutdown(self, now: float) -> list[Timed]:
        """The last messages: every sounding note's note-off, then All Notes Off per channel. Then silent."""
        if self._closed:
            return []
        self._responder.stop(now, "shutdown")
        self._band.stop()
        out: list[Timed] = []
        self._output.flush(now, out)
        out += self._output.close(now)
        if self.recorder is not None:
            self.recorder.close(max(now, self._output.sent_until))
        self._closed = True
        return out

    def input_lost(self, now: float) -> None:
        """The input port vanished: keys held now will send no note-off; release them."""
        self._released(self._listener.release_all(now), now)

    def _released(self, notes: Any, now: float) -> None:
        """Keys released without their note-off (the input lost, or held past ``hold_bars`` or
        ``stuck_note_s``): released for the accompaniment too, or it would keep time for keys no
        one holds; no playing, so no bar more of it either."""
        for note in notes:
            self._band.performer_up(note.pitch, now, self.bpm, played=False)

    def port_back(self, now: float, side: str) -> None:
        """A port is back ("input"/"output"): probe for a loopback again; an output is reset (``Output.reset``)."""
        self._output.reset(now, silence=side == "output")

    def _forget_call(self) -> None:
        self._listener.call = None
        self._responder.drop_speculation()

    def _model_failed(self, now: float, exc: Exception) -> None:
        """The model raised: stop any answer (its notes get their note-offs), forget the call,
        start the state from zero, and leave the model alone for a second (no hot error loop)."""
        self.errors.append(f"model error: {type(exc).__name__}: {exc}")
        self._responder.stop(now, "error")
        self._responder.answer = None
        self._listener.performer.drop_released()  # the failed notes are skipped
        self._forget_call()
        self._context.forget_state()
        self._cooldown_until = now + 1.0
