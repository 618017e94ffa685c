"""Listing JACK's MIDI ports through a libjack client that takes no part in JACK's cycles.

Why: python-rtmidi can only list ports through a MidiIn and a MidiOut, and each of those is a JACK
client with a process callback: two more threads JACK wakes in turn every period, for a session
that only looks at the names. On a loaded machine at a short period every client in the chain is
one more chance of an xrun. This client registers no process callback, so JACK never schedules
it; it lists ports as rtmidi would (full names ``client:port``, MIDI type), for ``MidiPorts``.
"""

from __future__ import annotations

import ctypes
import time
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
        lib.jack_recompute_total_latencies.argtypes = [ctypes.c_void_p]
        lib.jack_last_frame_time.restype = ctypes.c_uint32
        lib.jack_last_frame_time.argtypes = [ctypes.c_void_p]
        lib.jack_get_buffer_size.restype = ctypes.c_uint32
        lib.jack_get_buffer_size.argtypes = [ctypes.c_void_p]
        lib.jack_get_sample_rate.restype = ctypes.c_uint32
        lib.jack_get_sample_rate.argtypes = [ctypes.c_void_p]
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

    def settle(self, cycles: int = 2, wait_s: float = 0.5) -> None:
        """Return once every client has handled the latency notifications of the graph's changes
        so far (``rtmidi_client``'s close race). Why in two steps: the server recomputes latencies
        after a change only once its real-time thread switched to the new graph, at the next cycle;
        so first ``cycles`` cycles pass (JACK's own frame clock; at most ``wait_s``), then the server
        is asked to send every client a latency notification and wait for each answer: a client
        answers its notifications in order, so when this returns each has handled the earlier ones."""
        if self._client is None:
            return
        lib, client = self._lib, self._client
        frames = lib.jack_get_buffer_size(client) * cycles
        start, deadline = lib.jack_last_frame_time(client), time.monotonic() + wait_s
        nap = max(0.0005, lib.jack_get_buffer_size(client) / max(1, lib.jack_get_sample_rate(client)) / 2)
        while (lib.jack_last_frame_time(client) - start) % 2**32 < frames and time.monotonic() < deadline:
            time.sleep(nap)
        lib.jack_recompute_total_latencies(client)

    def close(self, server_gone: bool = False) -> None:
        client, self._client = self._client, None
        if client is not None and not server_gone:
            self._lib.jack_client_close(client)
        # A client of a dead server is left as it is (closing it waits on a socket that is gone).


def settle_jack() -> None:
    """``JackLister.settle`` through a client of its own, for a port closed with no session's
    lister at hand (a performer's port, ``open_output``); nothing where JACK cannot be reached."""
    try:
        lister = JackLister("improv-settle")
    except PortError:
        return
    try:
        lister.settle()
    finally:
        lister.close()
