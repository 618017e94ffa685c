"""Hearing the JACK server go away.

When jackd dies, python-rtmidi says nothing: its clients keep listing the ports of the dead
server (libjack reads them from shared memory), sends go nowhere without an error, and no input
ever arrives again. libjack itself only prints lines of its own on stderr. So a session that
serves on JACK keeps one more client of its own, with no ports, whose only job is libjack's
shutdown callback (``jack_on_shutdown``): it sets ``gone``, and the session says so in one line
and rebuilds its ports when the server is back (``watched_ports.MidiPorts``).

The same client tells the session what python-rtmidi cannot: the real-time priority of JACK's
client threads (``client_priority``: the serve loop must run below them, see
``session.process.loop_priority``). It registers no other callback: a Python callback needs the
GIL on libjack's notification thread, and while it waits for it, a thread holding the GIL in a
python-rtmidi call that asks the server something (closing a port) waits for that notification to
be answered: a deadlock (seen with an xrun callback here; the benchmark counts xruns from a
process of its own).

libjack is reached through ctypes (python-rtmidi does not expose the callback). Where libjack
cannot be loaded, or the client cannot open, ``available`` is False and nothing is watched.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from typing import Any

_NO_START_SERVER = 0x01  # JackNoStartServer: never start a server of our own
_SHUTDOWN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_ERROR = ctypes.CFUNCTYPE(None, ctypes.c_char_p)

_lib: Any = None


def libjack() -> Any:
    """libjack through ctypes, once; None where it cannot be loaded."""
    global _lib
    if _lib is None:
        name = _loaded_libjack() or ctypes.util.find_library("jack") or "libjack.so.0"
        try:
            lib = ctypes.CDLL(name)
            lib.jack_client_open.restype = ctypes.c_void_p
            lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
            lib.jack_on_shutdown.argtypes = [ctypes.c_void_p, _SHUTDOWN, ctypes.c_void_p]
            lib.jack_activate.argtypes = [ctypes.c_void_p]
            lib.jack_client_close.argtypes = [ctypes.c_void_p]
            lib.jack_set_error_function.argtypes = [_ERROR]
            lib.jack_is_realtime.argtypes = [ctypes.c_void_p]
            lib.jack_client_real_time_priority.argtypes = [ctypes.c_void_p]
        except (OSError, AttributeError):
            _lib = False
        else:
            _lib = lib
    return _lib or None


def _loaded_libjack() -> str | None:
    """The libjack this process has loaded already: python-rtmidi's wheels bring a copy of their
    own, and the error function must be set in the copy that complains (Linux: /proc/self/maps)."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rstrip("\n").split(maxsplit=5)[-1]
                if path.startswith("/") and os.path.basename(path).startswith("libjack"):
                    return path
    except OSError:
        pass
    return None


def quiet_libjack() -> None:
    """libjack's own complaints when the server dies ("Cannot read socket ...") would garble the
    session's report: improv says it in one line instead.

    The error function is C's ``strlen``, which reads the message and does nothing with it, never a
    Python callback: libjack complains from its own threads too (a notification thread that cannot
    reach a client that has just closed), and a Python callback there waits for the GIL, which a
    python-rtmidi call blocked in libjack holds (``delete`` -> ``jack_client_close`` waits for that
    very thread's lock): a deadlock, seen in a serve benchmark run."""
    lib = libjack()
    if lib is not None:
        lib.jack_set_error_function(_silent_error())


def _silent_error() -> Any:
    """A C function that takes libjack's message and ignores it (``strlen``: its result is dropped)."""
    return ctypes.cast(ctypes.CDLL(None).strlen, _ERROR)


class JackWatch:
    """A port-less JACK client whose shutdown callback sets ``gone`` (see the module docstring)."""

    def __init__(self, client_name: str) -> None:
        self.gone = threading.Event()
        self._client: int | None = None
        self._callback = _SHUTDOWN(self._on_shutdown)  # kept: libjack calls it from its own thread
        self._priority = 0
        lib = libjack()
        if lib is None:
            return
        quiet_libjack()
        status = ctypes.c_int(0)
        client = lib.jack_client_open(f"{client_name}-watch".encode(), _NO_START_SERVER, ctypes.byref(status))
        if not client:
            return
        lib.jack_on_shutdown(client, self._callback, None)
        if lib.jack_activate(client) != 0:
            lib.jack_client_close(client)
            return
        self._client = client
        if lib.jack_is_realtime(client):
            self._priority = max(0, int(lib.jack_client_real_time_priority(client)))

    @property
    def available(self) -> bool:
        return self._client is not None

    def client_priority(self) -> int:
        """The SCHED_FIFO priority of JACK's client threads (improv's own ports' included); 0 when
        JACK runs without real-time scheduling (or nothing is watched)."""
        return self._priority

    def _on_shutdown(self, arg: int | None) -> None:
        self.gone.set()  # libjack's thread: nothing else (no JACK calls are allowed here)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and not self.gone.is_set():
            libjack().jack_client_close(client)
        # A client of a dead server is left as it is: closing it only waits on a socket that is gone.


def jack_client_priority(client_name: str) -> int | None:
    """JACK's client-thread priority (``JackWatch.client_priority``), asked once by a short-lived
    client; None where libjack or the server cannot be reached."""
    watch = JackWatch(client_name)
    try:
        return watch.client_priority() if watch.available else None
    finally:
        watch.close()
