"""The performer's controls: controller numbers (CC) and Program Change -> what they ask for.

Knobs are continuous (temperature on a log scale, answer length x0.25 .. x4, imitation 0 .. 1);
switches act at 64 and above (end of call, panic); the voice is chosen by a knob's position among
the voices or by Program Change (program N = the Nth voice). Each control has a number of its own
(the config checks it), -1 turns it off. Pure: it maps messages to ``Action``s, the engine acts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from improv.settings.serve_section import ServeSettings

SUSTAIN = 64  # the sustain pedal controller: the performer's, not a control


@dataclass(frozen=True)
class Action:
    kind: str  # panic | end_call | temperature | length | voice | imitation | density | adapt | forget | mode | mutate
    value: float = 0.0


class Controls:
    def __init__(self, settings: ServeSettings, voices: int) -> None:
        self.settings = settings
        self.voices = voices
        self.bindings: dict[str, int] = {}  # MIDI learn: control name -> the CC number learned for it
        self.values: dict[str, int] = {}  # the last value each knob was set to
        self.learning: str | None = None  # the control the next CC is bound to

    def control(self, control: int, value: int) -> Action | None:
        s = self.settings
        if self.learning is not None:
            name, self.learning = self.learning, None
            self.bindings = {k: v for k, v in self.bindings.items() if v != control}  # one control per number
            self.bindings[name] = control
            return Action("learned", control)
        control = self._learned(control, value)
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
        return self._play_along(control, value)

    # ---- MIDI learn (issue 20): a learned number stands for the control's configured one ----

    def learn(self, name: str) -> None:
        if name not in control_names(self.settings):
            raise ValueError(f"unknown control {name!r} (controls: {', '.join(control_names(self.settings))})")
        self.learning = name

    def number(self, name: str) -> int:
        return self.bindings.get(name, getattr(self.settings, f"cc_{name}"))

    def _learned(self, control: int, value: int) -> int:
        by_number = {n: k for k, n in self.bindings.items()}
        name = by_number.get(control) or next((k for k in control_names(self.settings) if self.number(k) == control), None)
        if name is None:
            return control
        self.values[name] = value
        configured = getattr(self.settings, f"cc_{name}")
        return configured if configured >= 0 else control

    # ---- play along (issue 20): the mode knob (split in four) and the mutate knob ----

    def _play_along(self, control: int, value: int) -> Action | None:
        if control == self.settings.cc_mode:
            return Action("mode", min(value * 4 // 128, 3))
        if control == self.settings.cc_mutate:
            return Action("mutate", value / 127)
        return None

    def program(self, program: int) -> Action | None:
        if not self.settings.program_change_voice or self.voices <= 1 or program >= self.voices:
            return None
        return Action("voice", program)


def control_names(settings: ServeSettings) -> list[str]:
    """Every control a CC can drive: the ``serve.cc_*`` settings' names."""
    return [f.name[3:] for f in dataclasses.fields(settings) if f.name.startswith("cc_")]


# The monitor page's "learn" button reaches the engine as a message too (a knob cannot ask for
# it): a system-exclusive message for non-commercial use, "iln", then the control's index.
LEARN_ID = (0x7D, 0x69, 0x6C, 0x6E)


def learn_message_data(settings: ServeSettings, name: str) -> list[int]:
    return [*LEARN_ID, control_names(settings).index(name)]


def learn_request(settings: ServeSettings, data: tuple[int, ...]) -> str | None:
    """The control a learn request names, or None when ``data`` is not one."""
    names = control_names(settings)
    if tuple(data[: len(LEARN_ID)]) != LEARN_ID or len(data) != len(LEARN_ID) + 1 or data[-1] >= len(names):
        return None
    return names[data[-1]]
