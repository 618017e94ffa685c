"""How improv listens: tempo from MIDI clock or from a call, the key of a call, its own echoes.

Pure helpers of the engine: no ports, no clock (times are given). The estimates are plain numpy,
cheap enough to run during the silence before an answer (no music21 on the real-time path).
"""

from __future__ import annotations

from collections import deque

import mido


class EchoFilter:
    """Recognises improv's own messages coming back through a loopback port.

    Every message improv sends is remembered for ``window_s``; an incoming message equal to one of
    them is an echo and consumes that memory. A note_on matches on channel, pitch and velocity,
    specific enough to tell an echo from the performer. A note-off (or note_on of velocity 0) or a
    controller is not: the performer releasing the key improv just released looks the same. So
    those count as echoes only once a note_on echo has shown that a loopback exists. Once it has,
    the window narrows to a few times the echo delay seen, so a performer striking the key improv
    just struck is taken for an echo only within that (tiny) delay.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.loopback = False  # set by the first note_on echo
        self._delay = 0.0  # the longest echo delay seen
        self._recent: deque[tuple[float, tuple]] = deque()

    @property
    def current_window_s(self) -> float:
        if not self.loopback:
            return self.window_s
        return min(self.window_s, max(0.01, 3 * self._delay))

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
        if self.window_s > 0:
            key = self._key(msg)
            if key is not None:
                self._recent.append((t, key))
            # Pruned here too, not only when input arrives: a long answer with no input must not
            # grow the memory (2 windows back: sends are stamped a little ahead of the clock).
            while self._recent and self._recent[0][0] < t - 2 * self.window_s:
                self._recent.popleft()

    def is_echo(self, msg: mido.Message, now: float) -> bool:
        while self._recent and self._recent[0][0] < now - self.window_s:
            self._recent.popleft()
        if not self._recent:
            return False
        key = self._key(msg)
        if key is None or (key[0] != "on" and not self.loopback):
            return False
        window = self.current_window_s
        for i, (t, sent) in enumerate(self._recent):
            if sent == key and now - t <= window:
                del self._recent[i]
                self.loopback = True
                self._delay = max(self._delay, now - t)
                return True
        return False
