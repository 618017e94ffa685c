"""Raw MIDI bytes -> mido messages, as a keyboard or a driver may really send them.

What arrives on a port is not always well formed: running status, real-time bytes inside other
messages, sysex of any length, cut-off sysex, stray data bytes. The parser takes all of it
without breaking and without letting one bad stretch hold the rest back:

* a sysex that a status byte interrupts (``F0 01 02`` then a note, no ``F7``) is dropped at that
  byte, and the note is heard;
* a sysex longer than ``MAX_SYSEX_BYTES`` is dropped, its bytes never kept (a 10 MB dump costs
  the time to find its end, not 10 MB of Python integers);
* long stretches of bytes that cannot be music (a sysex body, data bytes with no status) are
  skipped with one regular-expression search, not one Python step per byte.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Iterator, Sequence

import mido

_DATA_BYTES = {0x8: 2, 0x9: 2, 0xA: 2, 0xB: 2, 0xC: 1, 0xD: 1, 0xE: 2}


_COMMON_BYTES = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF6: 0}


# Improv's own sysex (the loopback probe) is a few bytes; others are not improv's business, and a
# bound keeps a flood of them from taking memory.
MAX_SYSEX_BYTES = 1024


_STATUS_BYTE = re.compile(rb"[\x80-\xff]")


class MidiParser:
    """Raw MIDI bytes -> mido messages (see the module docstring); ``feed`` bytes, iterate messages.

    Handles running status (data bytes after a complete channel message repeat its status),
    real-time bytes (clock, start, stop...) interleaved anywhere, sysex, and skips junk: stray
    data bytes, undefined status bytes, unterminated or oversized sysex.
    """

    def __init__(self) -> None:
        self._status: int | None = None
        self._data: list[int] = []
        self._sysex: bytearray | None = None  # inside a sysex: the bytes kept so far
        self._sysex_over = False  # the sysex went past MAX_SYSEX_BYTES: its end is awaited, then dropped
        self._out: deque[mido.Message] = deque()

    def feed(self, data: Sequence[int] | bytes) -> None:
        raw = _as_bytes(data)
        i, n = 0, len(raw)
        while i < n:
            if self._sysex is not None or self._status is None:
                # Nothing but a status byte can matter until the next one: skip to it at C speed.
                found = _STATUS_BYTE.search(raw, i)
                end = found.start() if found else n
                if self._sysex is not None and end > i:
                    self._keep_sysex(raw, i, end)
                if found is None:
                    return
                i = end
            b = raw[i]
            i += 1
            if b >= 0xF8:  # real time: a message of its own, even inside another
                if b not in (0xF9, 0xFD):
                    self._emit([b])
            elif b == 0xF0:
                self._sysex, self._sysex_over, self._status, self._data = bytearray(), False, None, []
            elif b == 0xF7:
                if self._sysex is not None and not self._sysex_over:
                    self._emit([0xF0, *self._sysex, 0xF7])
                self._sysex = None
            elif b >= 0x80:
                self._sysex = None  # an unterminated sysex ends here, dropped
                self._status, self._data = b, []
                if b >= 0xF0:
                    if b not in _COMMON_BYTES:
                        self._status = None  # undefined (0xF4, 0xF5): junk
                    elif _COMMON_BYTES[b] == 0:
                        self._emit([b])
                        self._status = None
            else:  # a data byte of the message under way
                assert self._status is not None
                self._data.append(b)
                status = self._status
                needed = _COMMON_BYTES[status] if status >= 0xF0 else _DATA_BYTES[status >> 4]
                if len(self._data) == needed:
                    self._emit([status, *self._data])
                    self._data = []
                    if status >= 0xF0:
                        self._status = None  # system common messages cancel running status

    def _keep_sysex(self, raw: bytes, start: int, end: int) -> None:
        assert self._sysex is not None
        if self._sysex_over:
            return
        if len(self._sysex) + end - start > MAX_SYSEX_BYTES:
            self._sysex_over = True
            self._sysex.clear()
            return
        self._sysex += raw[start:end]

    def _emit(self, data: list[int]) -> None:
        try:
            self._out.append(mido.Message.from_bytes(data))
        except ValueError:
            pass  # not a valid message after all: skipped like any junk

    def __iter__(self) -> Iterator[mido.Message]:
        while self._out:
            yield self._out.popleft()


def _as_bytes(data: Sequence[int] | bytes) -> bytes:
    """The bytes as one ``bytes`` object (rtmidi hands a list of ints; values are taken mod 256)."""
    if isinstance(data, bytes):
        return data
    try:
        return bytes(data)
    except (ValueError, TypeError):
        return bytes(int(b) & 0xFF for b in data)
