"""What improv sounds: every note it starts, and the note-off that will end it.

Messages come out in time order, each with the time it must leave. A note-off is scheduled with
its note_on; striking a sounding pitch again ends it first (one key per pitch and channel);
``silence`` ends everything now; ``close`` is the last word: every note-off, then All Notes Off
on every channel. Nothing is ever scheduled before a message already handed out (input stamped
on arrival may lie a little in the past).
"""

from __future__ import annotations

import heapq
import math
from typing import Any, Sequence

import mido

ALL_NOTES_OFF = 123

Timed = tuple[float, mido.Message]


class Output:
    def __init__(self, channel: int, echo: Any, recorder: Any = None) -> None:
        self.channel = channel
        self.echo = echo
        self.recorder = recorder
        # Note-offs built once: sending only picks them (a mido.Message costs ~15 us to build).
        self._off_msgs = [mido.Message("note_off", channel=channel, note=p, velocity=0) for p in range(128)]
        self._offs: list[tuple[float, int, int]] = []  # heap of (time, seq, pitch)
        self.sounding: dict[int, int] = {}  # pitch -> seq of the note_off that will end it
        self._seq = 0
        self.urgent: list[Timed] = []
        self.sent_until = -math.inf  # the latest time of a message handed out

    def start(self, msg: mido.Message, t: float, duration_s: float, out: list[Timed]) -> None:
        """A note_on at ``t`` and its note-off ``duration_s`` later."""
        pitch = msg.note
        self.flush(t, out)
        if pitch in self.sounding:  # the same key again: end the sounding one first
            self._send_off(pitch, t, out)
        self.send(msg, t, out)
        self._seq += 1
        self.sounding[pitch] = self._seq
        heapq.heappush(self._offs, (t + duration_s, self._seq, pitch))
        if self.recorder is not None:
            self.recorder.note_on("improv", self.channel, pitch, msg.velocity, t)

    def end_at(self, pitch: int, t: float) -> None:
        """End a sounding note at ``t`` instead (a single line: the next note takes over)."""
        if pitch in self.sounding:
            self._seq += 1
            self.sounding[pitch] = self._seq
            heapq.heappush(self._offs, (max(t, self.sent_until), self._seq, pitch))

    def silence(self, now: float) -> None:
        """Every sounding note ends now (never before a message already handed out)."""
        now = max(now, self.sent_until)
        for pitch in list(self.sounding):
            self._seq += 1
            self.sounding[pitch] = self._seq
            heapq.heappush(self._offs, (now, self._seq, pitch))

    def flush(self, until: float, out: list[Timed]) -> None:
        """The note-offs due by ``until``."""
        while self._offs and self._offs[0][0] <= until:
            t, seq, pitch = heapq.heappop(self._offs)
            if self.sounding.get(pitch) == seq:
                self._send_off(pitch, t, out)

    def next_off(self) -> float | None:
        while self._offs and self.sounding.get(self._offs[0][2]) != self._offs[0][1]:
            heapq.heappop(self._offs)  # superseded
        return self._offs[0][0] if self._offs else None

    def all_notes_off(self, now: float, channels: Sequence[int] = range(16)) -> None:
        """All Notes Off on ``channels`` (every one unless told), now (after the note-offs: some synths ignore CC 123)."""
        now = max(now, self.sent_until)
        new = [(now, mido.Message("control_change", channel=ch, control=ALL_NOTES_OFF, value=0)) for ch in channels]
        self.urgent.extend(new)
        for t, msg in new:
            self.echo.sent(msg, t)

    def reset(self, now: float, silence: bool = True) -> None:
        """A port came back after an outage: probe for a loopback again (the wiring may differ);
        with ``silence`` (the output), a note-off for every note improv believes sounding, then
        All Notes Off on its channel, all at once (before anything else is sent)."""
        self.echo.probe_soon()
        if not silence:
            return
        self.silence(now)
        self.flush(max(now, self.sent_until), self.urgent)
        self.all_notes_off(now, (self.channel,))

    def take_urgent(self, out: list[Timed]) -> None:
        if self.urgent:
            out.extend(self.urgent)
            self.sent_until = max(self.sent_until, max(t for t, _ in self.urgent))
            self.urgent.clear()

    def close(self, now: float) -> list[Timed]:
        """The last messages: every sounding note's note-off, then All Notes Off per channel, all
        stamped now (or just after the last message handed out)."""
        out: list[Timed] = []
        self.silence(now)
        self.flush(math.inf, out)
        self.all_notes_off(now)
        self.take_urgent(out)
        return out

    def _send_off(self, pitch: int, t: float, out: list[Timed]) -> None:
        del self.sounding[pitch]
        self.send(self._off_msgs[pitch], t, out)
        if self.recorder is not None:
            self.recorder.note_off("improv", self.channel, pitch, t)

    def send(self, msg: mido.Message, t: float, out: list[Timed]) -> None:
        self.echo.sent(msg, t)
        out.append((t, msg))
        if t > self.sent_until:
            self.sent_until = t
