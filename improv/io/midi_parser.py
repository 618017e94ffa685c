"""MIDI ports: discovery, opening by name, reconnection, and in-memory ports for tests and the demo.

Real ports use python-rtmidi directly (mido's rtmidi backend wraps the same library) so that
improv controls what matters for real time: the rtmidi callback, which runs on rtmidi's own
thread, only stamps the raw bytes with their arrival time (``time.perf_counter``, the serve
loop's ``RealClock``), queues them and wakes the serve loop; the loop (one thread) parses and
handles them, with those stamps (``iter_stamped``). Client names are improv's own (``improv``), on every API. Parsing is tolerant:
running status, real-time bytes inside messages, sysex and junk never break it.

A port is named by a substring of its name; a name matching no port or several is a one-line
``PortError`` listing the ports there are.
"""

from __future__ import annotations

from collections import deque
from typing import Iterator, Sequence

import mido

_DATA_BYTES = {0x8: 2, 0x9: 2, 0xA: 2, 0xB: 2, 0xC: 1, 0xD: 1, 0xE: 2}


_COMMON_BYTES = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF6: 0}


class MidiParser:
    """Raw MIDI bytes -> mido messages, as a keyboard or a driver may really send them.

    Handles running status (data bytes after a complete channel message repeat its status),
    real-time bytes (clock, start, stop...) interleaved anywhere, sysex, and skips junk: stray
    data bytes, undefined status bytes, unterminated sysex.
    """

    def __init__(self) -> None:
        self._status: int | None = None
        self._data: list[int] = []
        self._sysex: list[int] | None = None
        self._out: deque[mido.Message] = deque()

    def feed(self, data: Sequence[int]) -> None:
        for b in data:
            b = int(b) & 0xFF
            if b >= 0xF8:  # real time: a message of its own, even inside another
                if b not in (0xF9, 0xFD):
                    self._emit([b])
            elif b == 0xF0:
                self._sysex, self._status, self._data = [], None, []
            elif b == 0xF7:
                if self._sysex is not None:
                    self._emit([0xF0, *self._sysex, 0xF7])
                self._sysex = None
            elif b >= 0x80:
                self._sysex = None
                self._status, self._data = b, []
                if b >= 0xF0:
                    if b not in _COMMON_BYTES:
                        self._status = None  # undefined (0xF4, 0xF5): junk
                    elif _COMMON_BYTES[b] == 0:
                        self._emit([b])
                        self._status = None
            elif self._sysex is not None:
                self._sysex.append(b)
            elif self._status is not None:
                self._data.append(b)
                status = self._status
                needed = _COMMON_BYTES[status] if status >= 0xF0 else _DATA_BYTES[status >> 4]
                if len(self._data) == needed:
                    self._emit([status, *self._data])
                    self._data = []
                    if status >= 0xF0:
                        self._status = None  # system common messages cancel running status
            # else: a data byte with no status: junk, skipped

    def _emit(self, data: list[int]) -> None:
        try:
            self._out.append(mido.Message.from_bytes(data))
        except ValueError:
            pass  # not a valid message after all: skipped like any junk

    def __iter__(self) -> Iterator[mido.Message]:
        while self._out:
            yield self._out.popleft()
