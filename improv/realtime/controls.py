"""The performer's controls: controller numbers (CC) and Program Change -> what they ask for.

Knobs are continuous (temperature on a log scale, answer length x0.25 .. x4, imitation 0 .. 1);
switches act at 64 and above (end of call, panic); the voice is chosen by a knob's position among
the voices or by Program Change (program N = the Nth voice). Each control has a number of its own
(the config checks it), -1 turns it off. Pure: it maps messages to ``Action``s, the engine acts.
"""

from __future__ import annotations

from dataclasses import dataclass

from improv.settings.sections import ServeSettings

SUSTAIN = 64  # the sustain pedal controller: the performer's, not a control


@dataclass(frozen=True)
class Action:
    kind: str  # panic | end_call | temperature | length | voice | imitation | density | adapt | forget
    value: float = 0.0


class Controls:
    def __init__(self, settings: ServeSettings, voices: int) -> None:
        self.settings = settings
        self.voices = voices

    def control(self, control: int, value: int) -> Action | None:
        s = self.settings
        if control == s.cc_panic:
            return Action("panic") if value >= 64 else None
        if control == s.cc_end_call:
            return Action("end_call") if value >= 64 else None
        if control == s.cc_temperature:
            lo, hi = s.temperature_min, s.temperature_max
            return Action("temperature", lo * (hi / lo) ** (value / 127))
        if control == s.cc_length:
            return Action("length", 2.0 ** ((value - 64) / 32))
        if control == s.cc_voice and self.voices > 1:
            return Action("voice", min(value * self.voices // 128, self.voices - 1))
        if control == s.cc_imitation:
            return Action("imitation", value / 127)
        if control == s.cc_density:  # x0.25 (0) .. x1 (64) .. about x4 (127), like the length knob
            return Action("density", 4.0 ** ((value - 64) / 64))
        return self._memory(control, value)

    def _memory(self, control: int, value: int) -> Action | None:
        """The session memory's knob and switch (realtime/memory.py)."""
        if control == self.settings.cc_adapt:
            return Action("adapt", value / 127)
        if control == self.settings.cc_forget:
            return Action("forget") if value >= 64 else None
        return None

    def program(self, program: int) -> Action | None:
        if not self.settings.program_change_voice or self.voices <= 1 or program >= self.voices:
            return None
        return Action("voice", program)
