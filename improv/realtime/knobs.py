"""What the performer's knobs and switches do to the engine (``Controls`` turns MIDI into these
actions): panic, end the call, temperature, imitation, density, length, voice, the session memory;
the band's own (``playalong.py``) otherwise. Mixed into ``Engine``, kept apart so that the engine
stays a router. Pure: no ports, no clock."""

from __future__ import annotations

from typing import Any

from improv.model.sampling import SamplingParams
from improv.realtime.controls import Action
from improv.realtime.playalong import LISTEN


class Knobs:
    """Mixed into ``Engine``: uses its ``_planner``, ``_responder``, ``_listener``, ``_context``,
    ``params``, ``imitation``, ``length_factor``, ``voice``, ``voices``, ``memory``, ``mode``,
    ``answer``, ``model``, ``panic``, ``_act_play_along``."""

    _planner: Any
    _responder: Any
    _listener: Any
    _context: Any
    params: SamplingParams
    imitation: float
    length_factor: float
    voice: int
    voices: list[Any]
    memory: Any
    mode: str
    answer: Any
    model: Any
    panic: Any
    _act_play_along: Any

    def _act(self, action: Action | None, now: float) -> None:
        kind = action.kind if action is not None else ""
        if kind == "panic":
            self.panic(now)
        elif kind == "end_call" and self._listener.call is not None and self.mode == LISTEN:
            self._listener.call.end_request = now
        elif kind in ("temperature", "imitation", "density"):  # an answer not started yet is drawn again
            if kind == "temperature":
                self.params = SamplingParams(action.value, self.params.top_k, self.params.top_p)
            elif kind == "density":
                self._planner.density = action.value
            else:
                self.imitation = action.value
            a = self.answer
            if a is not None and a.playback is None:
                self._planner.restart(a, self._responder.exchanges, self.imitation)
        elif kind == "length":
            self.length_factor = action.value
        elif kind == "voice":
            self.set_voice(int(action.value))
        elif kind in ("adapt", "forget"):  # the session memory's knob (from the next answer on) and switch
            self.memory.control(kind, action.value)
        elif action is not None:
            self._act_play_along(action, now)

    def set_voice(self, index: int) -> None:
        """Answer with another voice from the next answer on (the one playing finishes as it
        began): the new voice is primed from the window in the background."""
        if index == self.voice or not 0 <= index < len(self.voices):
            return
        self.voice = index
        self._context.forget_state(self.model)
        self._responder.drop_speculation()  # prepared with the other voice
