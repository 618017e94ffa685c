"""One python-rtmidi client's life: made (or a one-line ``PortError``), its port closed without
libjack's close race, or abandoned with a MIDI server that died.

The close race (python-rtmidi 1.5.8, its bundled libjack; jack2 issue #216): closing a port
(``close_port``, and ``delete``, which closes it too) calls ``jack_port_unregister``, which erases
the port from the client's own list of ports on the calling thread, while that client's
notification thread may be walking the same list (``JackClient::HandleLatencyCallback``, run for
every latency notification the server sends after any connection in the graph changed). On a
loaded machine that thread answers late, the erase frees the node under it, and it segfaults.
A core of a crashed stress run (``benchmarks/bench_segf.py``) shows exactly that: the main thread
in ``MidiInJack::closePort`` -> ``jack_port_unregister``, the faulting thread in
``HandleLatencyCallback`` dereferencing a freed list node.

``close_port(rt, settle)`` asks the server first to send every client a latency notification and
wait for each answer (``jack_ports.settle``): the notification threads answer in order, so when
it returns each has handled everything sent before and is idle, and the erase meets no walker.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from typing import Any, Callable, Iterator

from improv.errors import PortError
from improv.io.jack_synchro import mapped_synchros, own_synchro

# improv's API names -> python-rtmidi's constant names (looked up lazily: rtmidi loads on demand).
APIS = {"alsa": "API_LINUX_ALSA", "jack": "API_UNIX_JACK", "coremidi": "API_MACOSX_CORE", "winmm": "API_WINDOWS_MM"}


def rtmidi_module() -> Any:
    import rtmidi  # lazily: `improv --help` need not load it

    return rtmidi


def api_name(api: int) -> str:
    rt = rtmidi_module()
    for name, const in APIS.items():
        if getattr(rt, const, None) == api:
            return name
    return str(api)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Hide what libasound/libjack print on their own when a MIDI system is absent: improv says
    it in one line instead. (File-descriptor level: those libraries write from C.)"""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


DEAF_RETRIES = 5  # clients made again in a row where each got a dead wake-up (one is rare)


def new_client(kind: str, api: int, client_name: str) -> Any:
    """An rtmidi MidiIn/MidiOut, or a one-line PortError when the MIDI system is not there. On
    JACK, a client that got another's dead wake-up (``jack_synchro``: it would never run) is
    made again, and the deaf one deleted once its replacement is there: while it lives it keeps
    its client number, so the replacement gets another (and a late notification emptying the
    dead slot empties the deaf one's, not the replacement's)."""
    jack = api_name(api) == "jack"
    deaf: list[Any] = []
    try:
        for _ in range(DEAF_RETRIES + 1):
            before = mapped_synchros() if jack else None
            port = _open(kind, api, client_name)
            if not jack or own_synchro(client_name, before, mapped_synchros()):
                return port
            deaf.append(port)
        raise PortError(f"cannot open a working {api_name(api)} MIDI client {client_name!r}: JACK gave it another client's wake-up {DEAF_RETRIES + 1} times")
    finally:
        for port in deaf:
            port.delete()


def _open(kind: str, api: int, client_name: str) -> Any:
    rt = rtmidi_module()
    try:
        with quiet_stderr():
            port = getattr(rt, kind)(api, client_name)
    except rt.RtMidiError as exc:
        raise PortError(f"cannot reach the {api_name(api)} MIDI system: {exc}") from None
    port.set_error_callback(lambda *a: None)  # warnings become improv's own reports
    return port


def no_settle() -> None:
    """Nothing to wait for before a close (every MIDI system but JACK)."""


def close_port(rt: Any, settle: Callable[[], None] = no_settle) -> None:
    """Close the client's port, once its notifications are all handled (see the module's note).
    A second Ctrl-C during the wait still closes the port (a port left to the interpreter's exit
    would be closed there, with no wait at all)."""
    try:
        settle()
    finally:
        rt.close_port()


def close(rt: Any, settle: Callable[[], None] = no_settle) -> None:
    """Close the port (safely: ``close_port``) and free the client (with no port, its delete
    unregisters nothing)."""
    try:
        close_port(rt, settle)
    finally:
        rt.delete()


def abandon(rt: Any) -> None:
    """Leave an rtmidi client of a MIDI server that died alone for the rest of the process.

    Why: deleting it calls into libjack for a server that is gone (with python-rtmidi's wheel a
    segfault, or a wait of a second); so does letting Python free it, at any later moment. One
    reference more than anyone holds keeps it from ever being freed: a few kB per server restart.
    """
    if rt is not None:
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(rt))
