"""Improv's own messages coming back through a loopback port (IAC, loopMIDI used both ways, a
synth's MIDI thru): recognised, and never mistaken for the performer.

Whether a loopback exists is measured, never guessed from a coincidence. Improv sends a probe
when the session starts and when a port comes back (the wiring may differ), never on a timer: a
system-exclusive message ``F0 7D 69 6D 70 nn F7``, with the non-commercial manufacturer ID (0x7D,
which instruments ignore) and a number of its own. ``serve.echo_probe: false`` sends none, and
then nothing is ever taken for an echo. If it comes back, there is a loopback, and how long
it took is its delay; if it does not within ``PROBE_WAIT_S``, there is none. Only while a
loopback is known is an incoming message equal to one improv sent within a few times that delay
taken for its echo, and each message sent absorbs one echo at most. Without a loopback nothing
is ever an echo: a fixed-velocity keyboard that happens to strike the key improv just struck is
the performer, always.
"""

from __future__ import annotations

import math
from collections import deque

import mido

PROBE_ID = (0x7D, 0x69, 0x6D, 0x70)  # non-commercial use, then "imp"
PROBE_WAIT_S = 1.0  # no reply by then: no loopback
MIN_WINDOW_S = 0.005  # an echo is expected within max(this, 3 x the measured delay)


class EchoFilter:
    def __init__(self, window_s: float) -> None:
        self.window_s = window_s  # the longest an echo may take (serve.echo_ms); 0 = no echo handling (and no probe)
        self.loopback = False
        self.delay = 0.0  # the longest probe round trip measured while the loopback is known
        self._recent: deque[tuple[float, tuple]] = deque()
        self._nonce = 0
        self._probe_sent: float | None = None  # when the probe in flight left (None: none in flight)
        self._probe_until = -math.inf  # its wait ends then (kept, not recomputed: exact comparisons)
        self._next_probe = -math.inf  # at start; then only when asked (``probe_soon``)

    @property
    def current_window_s(self) -> float:
        return min(self.window_s, max(MIN_WINDOW_S, 3 * self.delay))

    # ---- probing ------------------------------------------------------------------------------

    def probe_due(self, now: float) -> mido.Message | None:
        """A probe to send now, if one is due (and the last one's wait is over)."""
        if self.window_s <= 0:
            return None
        if self._probe_sent is not None and now >= self._probe_until:
            self._probe_sent = None  # unanswered: no loopback (any more)
            self.loopback, self.delay = False, 0.0
        if self._probe_sent is not None or now < self._next_probe:
            return None
        self._nonce = (self._nonce + 1) % 128
        self._probe_sent, self._probe_until, self._next_probe = now, now + PROBE_WAIT_S, math.inf
        return mido.Message("sysex", data=[*PROBE_ID, self._nonce])

    def probe_soon(self) -> None:
        """Probe again at the next chance (the output port was reopened: the wiring may differ)."""
        self._next_probe = -math.inf

    def next_probe_at(self) -> float | None:
        if self.window_s <= 0:
            return None
        if self._probe_sent is not None:
            return self._probe_until
        return self._next_probe if self._next_probe < math.inf else None

    def is_probe(self, msg: mido.Message, now: float) -> bool:
        """An incoming probe of ours (consumed here: it is never the performer's)."""
        if msg.type != "sysex" or tuple(msg.data[: len(PROBE_ID)]) != PROBE_ID:
            return False
        if self._probe_sent is not None and len(msg.data) == len(PROBE_ID) + 1 and msg.data[-1] == self._nonce:
            self.loopback = True
            self.delay = max(self.delay, now - self._probe_sent)
            self._probe_sent = None
        return True

    # ---- echoes ---------------------------------------------------------------------------------

    @staticmethod
    def _key(msg: mido.Message) -> tuple | None:
        if msg.type == "note_on" and msg.velocity > 0:
            return ("on", msg.channel, msg.note, msg.velocity)
        if msg.type in ("note_on", "note_off"):
            return ("off", msg.channel, msg.note)
        if msg.type == "control_change":
            return ("cc", msg.channel, msg.control, msg.value)
        return None

    def sent(self, msg: mido.Message, t: float) -> None:
        if self.window_s <= 0:
            return
        key = self._key(msg)
        if key is not None:
            self._recent.append((t, key))
        # Pruned here too, not only when input arrives: a long answer with no input must not grow
        # the memory (2 windows back: sends are stamped a little ahead of the clock).
        while self._recent and self._recent[0][0] < t - 2 * self.window_s:
            self._recent.popleft()

    def is_echo(self, msg: mido.Message, now: float) -> bool:
        while self._recent and self._recent[0][0] < now - self.window_s:
            self._recent.popleft()
        if not self.loopback or not self._recent:
            return False
        key = self._key(msg)
        if key is None:
            return False
        window = self.current_window_s
        for i, (t, sent) in enumerate(self._recent):
            if sent == key and -0.002 <= now - t <= window:  # a hair early: stamps of two clocks
                del self._recent[i]
                return True
        return False
