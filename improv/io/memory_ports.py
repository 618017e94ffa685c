"""In-memory MIDI ports, for the tests, the demo and the benchmarks: a scripted input (messages that
arrive at given times on a clock, raw bytes parsed like a real port's) and an output that
records what is sent, optionally looping it back into an input (as IAC or a patch bay would).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import mido

from improv.io.midi_parser import MidiParser


class ScriptedInput:
    """Messages that arrive at given times on ``clock``: what a performer plays, scripted.

    ``iter_stamped`` yields those whose time has come, stamped with their scheduled time (what a
    real port's arrival stamp would be); ``next_arrival`` tells the loop when to wake for the
    next. Raw bytes go through ``MidiParser`` like a real port's.
    """

    def __init__(self, clock: Any, messages: Sequence[tuple[float, mido.Message]] = ()) -> None:
        self.clock = clock
        self.name = "scripted"
        self._queue: list[tuple[float, int, Any]] = []
        self._n = 0
        self._parser = MidiParser()
        for t, msg in messages:
            self.add(t, msg)

    def add(self, t: float, msg: mido.Message | bytes | Sequence[int]) -> None:
        import heapq

        self._n += 1
        heapq.heappush(self._queue, (float(t), self._n, msg))
        alarm = getattr(self.clock, "alarm", None)
        if alarm is not None:
            alarm(t)

    def next_arrival(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def iter_stamped(self) -> Iterator[tuple[float, mido.Message]]:
        import heapq

        now = self.clock.now()
        while self._queue and self._queue[0][0] <= now:
            t, _, item = heapq.heappop(self._queue)
            if isinstance(item, mido.Message):
                yield t, item
            else:
                self._parser.feed(item)
                for msg in self._parser:
                    yield t, msg

    def close(self) -> None:
        self._queue.clear()


class MemoryOutput:
    """Records what is sent, with the clock's time; optionally loops it back into an input
    after ``echo_delay`` (a loopback port, as IAC or a patch bay make)."""

    def __init__(self, clock: Any, loopback: ScriptedInput | None = None, echo_delay: float = 0.001) -> None:
        self.clock = clock
        self.name = "memory"
        self.sent: list[tuple[float, mido.Message]] = []
        self.loopback = loopback
        self.echo_delay = echo_delay
        self.on_send: Callable[[float, mido.Message], None] | None = None

    def send(self, msg: mido.Message) -> None:
        now = self.clock.now()
        self.sent.append((now, msg))
        if self.loopback is not None:
            self.loopback.add(now + self.echo_delay, msg)
        if self.on_send is not None:
            self.on_send(now, msg)

    def close(self) -> None:
        pass
