"""Listing JACK's MIDI ports through a libjack client that takes no part in JACK's cycles.

Why: python-rtmidi can only list ports through a MidiIn and a MidiOut, and each of those is a JACK
client with a process callback: two more threads JACK wakes in turn every period, for a session
that only looks at the names. On a loaded machine at a short period every client in the chain is
one more chance of an xrun. This client registers no process callback, so JACK never schedules
it; it lists ports as rtmidi would (full names ``client:port``, MIDI type), for ``MidiPorts``.
"""

from __future__ import annotations

import ctypes
from typing import Any

from improv.errors import PortError
from improv.io.jack_watch import libjack, quiet_libjack

_NO_START_SERVER = 0x01
_IS_INPUT, _IS_OUTPUT = 0x1, 0x2
_MIDI_TYPE = b"8 bit raw midi"  # JACK_DEFAULT_MIDI_TYPE


class JackLister:
    """``inputs()`` / ``outputs()`` as rtmidi's ``PortLister`` gives them on JACK (what improv can
    read from / send to), and ``close(server_gone)``. A ``PortError`` when JACK cannot be reached."""

    def __init__(self, client_name: str = "improv-list") -> None:
        lib = libjack()
        if lib is None:
            raise PortError("cannot reach the jack MIDI system: libjack cannot be loaded")
        lib.jack_get_ports.restype = ctypes.POINTER(ctypes.c_char_p)
        lib.jack_get_ports.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong]
        lib.jack_free.argtypes = [ctypes.c_void_p]
        quiet_libjack()
        status = ctypes.c_int(0)
        client = lib.jack_client_open(client_name.encode(), _NO_START_SERVER, ctypes.byref(status))
        if not client:
            raise PortError(f"cannot reach the jack MIDI system: no server answers (status {status.value:#x})")
        self._lib: Any = lib
        self._client: int | None = client

    def _ports(self, flags: int) -> list[str]:
        if self._client is None:
            return []
        found = self._lib.jack_get_ports(self._client, None, _MIDI_TYPE, flags)
        if not found:
            return []
        names = []
        k = 0
        while found[k] is not None:
            names.append(found[k].decode(errors="replace"))
            k += 1
        self._lib.jack_free(ctypes.cast(found, ctypes.c_void_p))
        return names

    def inputs(self) -> list[str]:
        """Ports improv can read from: JACK's MIDI outputs (as rtmidi's MidiIn lists them)."""
        return self._ports(_IS_OUTPUT)

    def outputs(self) -> list[str]:
        """Ports improv can send to: JACK's MIDI inputs."""
        return self._ports(_IS_INPUT)

    def close(self, server_gone: bool = False) -> None:
        client, self._client = self._client, None
        if client is not None and not server_gone:
            self._lib.jack_client_close(client)
        # A client of a dead server is left as it is (closing it waits on a socket that is gone).
