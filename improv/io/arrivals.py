"""What an input hands the loop: raw MIDI bytes, stamped on arrival, in a bounded queue."""

from __future__ import annotations

import threading
from collections import deque
from typing import Iterator, Sequence

import mido

from improv.io.midi_parser import MidiParser

CAPACITY = 4096  # raw events waiting for the loop (at MIDI's wire speed, over a second of input)


class ArrivalQueue:
    """Raw MIDI bytes as an input hands them over (``input_poller``), stamped on arrival.

    Why stamp on arrival: the loop drains the queue only between its own turns (after up to
    a think slice, a few milliseconds); the performer's timing is when the message arrived.
    Bounded: while the loop stalls (a machine frozen, a debugger) a flood of input (MIDI clock,
    a controller's stream) cannot grow it; what finds it full is dropped and counted (``dropped``),
    and the loop releases the keys held, whose note-offs may be among the dropped.
    """

    def __init__(self, wake: threading.Event | None = None, capacity: int = CAPACITY) -> None:
        self.wake = wake
        self.capacity = capacity
        self.dropped = 0  # events that found the queue full (the loop reads it: keys may hang)
        self._queue: deque[tuple[float, Sequence[int]]] = deque()
        self._parser = MidiParser()

    def put(self, data: Sequence[int], stamp: float) -> None:
        # Any thread: queue (deque.append is atomic), wake the loop; nothing else.
        if len(data) == 1 and data[0] == 0xF7:
            return  # SysexRelease's lone F7 with no sysex pending: nothing to hear, no wake-up
        if len(self._queue) >= self.capacity:  # the loop has stalled: drop, count, never grow
            self.dropped += 1
        else:
            self._queue.append((stamp, data))
        if self.wake is not None:
            self.wake.set()

    def iter_stamped(self) -> Iterator[tuple[float, mido.Message]]:
        """(arrival time, message), oldest first; a message split over two reads has the
        later one's stamp (it was complete only then)."""
        while self._queue:
            t, data = self._queue.popleft()
            self._parser.feed(data)
            for msg in self._parser:
                yield t, msg
