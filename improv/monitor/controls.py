"""The page's controls -> the MIDI messages a performer's knobs and switches send.

The page changes improv exactly as a controller does: each control becomes the control change
(per the ``serve.cc_*`` numbers) or Program Change the engine already understands, handed to it on
the loop's own thread with the performer's messages. So the page needs no entry into the engine,
and what it can do is what the knobs can do. Pure: the inverse of ``realtime.controls``' mapping.
"""

from __future__ import annotations

import math
from typing import Any

import mido

from improv.errors import ImprovError
from improv.settings.serve_section import ServeSettings

LENGTH_RANGE = (0.25, 4.0)


class ControlError(ImprovError):
    """A control the page asked for that this session does not have, or a bad value."""


def available(s: ServeSettings, voices: int) -> dict[str, bool]:
    """Which controls this session has (a controller number of -1 turns one off)."""
    return {
        "temperature": s.cc_temperature >= 0,
        "length": s.cc_length >= 0,
        "imitation": s.cc_imitation >= 0,
        "density": s.cc_density >= 0,
        "voice": voices > 1 and (s.program_change_voice or s.cc_voice >= 0),
        "panic": s.cc_panic >= 0,
        "end_call": s.cc_end_call >= 0,
        **memory_controls(s),
        "mode": s.cc_mode >= 0,  # play along (issue 20)
        "mutate": s.cc_mutate >= 0,
    }


def memory_controls(s: ServeSettings) -> dict[str, bool]:
    """The session memory's knob and button (realtime/memory.py)."""
    return {"adapt": s.cc_adapt >= 0, "forget": s.cc_forget >= 0}


def control_message(name: str, value: Any, s: ServeSettings, voices: int) -> mido.Message:
    """The message that sets control ``name`` to ``value`` (ignored for panic, end_call, forget)."""
    if name == "learn":  # MIDI learn: the next controller message is bound to control ``value``
        from improv.realtime.controls import control_names, learn_message_data

        if value not in control_names(s):
            raise ControlError(f"bad value for learn: {value!r} (one of {', '.join(control_names(s))})")
        return mido.Message("sysex", data=learn_message_data(s, value))
    if name not in available(s, voices):
        raise ControlError(f"unknown control {name!r} (controls: {', '.join(available(s, voices))})")
    if not available(s, voices)[name]:
        raise ControlError(f"the {name} control is off in this session")
    if name == "panic":
        return _cc(s.cc_panic, 127)
    if name == "forget":
        return _cc(s.cc_forget, 127)
    if name == "end_call":
        return _cc(s.cc_end_call, 127)
    number = 0.0 if name == "mode" else _number(name, value)
    if name == "temperature":
        lo, hi = s.temperature_min, s.temperature_max
        position = 0.0 if hi == lo else math.log(min(max(number, lo), hi) / lo) / math.log(hi / lo)
        return _cc(s.cc_temperature, round(127 * position))
    if name == "length":
        factor = min(max(number, LENGTH_RANGE[0]), LENGTH_RANGE[1])
        return _cc(s.cc_length, round(64 + 32 * math.log2(factor)))
    if name == "imitation":
        return _cc(s.cc_imitation, round(127 * min(max(number, 0.0), 1.0)))
    if name == "density":
        factor = min(max(number, 0.25), 4.0)
        return _cc(s.cc_density, min(round(64 + 32 * math.log2(factor)), 127))
    if name == "adapt":
        return _cc(s.cc_adapt, round(127 * min(max(number, 0.0), 1.0)))
    if name == "mutate":
        return _cc(s.cc_mutate, round(127 * min(max(number, 0.0), 1.0)))
    if name == "mode":
        return _cc(s.cc_mode, _mode_index(value) * 32 + 16)  # the middle of the mode's quarter of the knob
    index = int(number)
    if not 0 <= index < voices or index != number:
        raise ControlError(f"no voice number {value!r} (0 to {voices - 1})")
    if s.program_change_voice:
        return mido.Message("program_change", program=index)
    return _cc(s.cc_voice, int((index + 0.5) * 128 / voices))  # the middle of the voice's band of the knob


def _mode_index(value: Any) -> int:
    from improv.realtime.modes import MODES

    if value not in MODES:
        raise ControlError(f"bad value for mode: {value!r} (one of {', '.join(MODES)})")
    return MODES.index(value)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ControlError(f"bad value for {name}: {value!r} (expected a number)")
    return float(value)


def _cc(control: int, value: int) -> mido.Message:
    return mido.Message("control_change", control=control, value=min(max(int(value), 0), 127))
