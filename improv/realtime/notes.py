"""The one shape of a sounded note on the live path, in the session's seconds: what improv sent
(answers, the band), what the recorder keeps of both parties, and what the evaluations read back
from an engine's messages.

The other note shapes are notes at other stages, on purpose: ``music.notes.Note`` is a note of a
piece, in beats; ``performer.InNote`` a key still held (its end not known yet); ``context.WinEvent``
an event as the model heard it (its token row); ``answer.Planned`` a sampled note not sent yet (its
model state and its message, built ahead).
"""

from __future__ import annotations

from typing import NamedTuple


class LiveNote(NamedTuple):
    pitch: int
    onset: float  # seconds on the session's clock
    end: float  # seconds: its note-off
    velocity: int
    channel: int = 0  # 0-15

    @property
    def duration(self) -> float:
        return self.end - self.onset
