"""The loop's output while it is gone, and what is owed to the synth when it is back.

An output can be gone in two ways: sends fail (the MIDI system has no client for it yet, the
port is being reopened), or they seem to succeed but reach nothing (a named port vanished, the
JACK server died: the supervisor says so). Either way a note sounding on the synth when the port
went may lose its note-off, and would sound until the session ends. So while the output is gone
every message that could not reach it is counted, and each note-off among them is kept (one per
channel and key: at most 2048); when the output is back, the loop sends those note-offs again,
the engine sends a note-off for every note it believes sounding and All Notes Off on its channel
(``Engine.port_back``), and one status line says how many messages were lost.
"""

from __future__ import annotations

import mido


class Outage:
    def __init__(self) -> None:
        self.down = False
        self.cause = ""  # "send": sends fail; "port": sends reach nothing (until the port is back)
        self.lost = 0  # messages that could not reach the output, this outage
        self.lost_total = 0
        self._offs: dict[tuple[int, int], mido.Message] = {}

    def begin(self, cause: str) -> bool:
        """The output is gone; True when it was not already."""
        was_down, self.down = self.down, True
        if not was_down or cause == "port":
            self.cause = cause  # a vanished port outranks failing sends: only its return ends it
        return not was_down

    def missed(self, msg: mido.Message) -> None:
        """A message that did not reach the output (failed, or sent into a port that is gone)."""
        self.lost += 1
        self.lost_total += 1
        if msg.type == "note_off" or (msg.type == "note_on" and msg.velocity == 0):
            self._offs[(msg.channel, msg.note)] = msg

    def end(self) -> tuple[list[mido.Message], int]:
        """The output is back: the note-offs owed, and how many messages were lost."""
        offs, lost = list(self._offs.values()), self.lost
        self._offs.clear()
        self.down, self.cause, self.lost = False, "", 0
        return offs, lost
