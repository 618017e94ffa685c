"""The sysex release: a port of improv's own that keeps a cut-off sysex from silencing its JACK
input (``SysexRelease``; ``RtInput`` makes one on JACK)."""

from __future__ import annotations

import re
import threading
from typing import Callable

from improv.io.rtmidi_client import abandon, close, close_port, new_client, no_settle

# The release's port as others list it: CLIENT-release:release (JACK adds -01, -02... to a taken
# client name). improv's own plumbing, never a port for a user to name.
_RELEASE_PORT = re.compile(r".+-release(-\d+)?:release")


def is_release_port(name: str) -> bool:
    """Whether ``name`` is a sysex release's port (improv's own, of this or another improv)."""
    return _RELEASE_PORT.fullmatch(name) is not None


class SysexRelease:
    """Ends a sysex that rtmidi waits for in vain, so that a cut-off one cannot silence improv.

    Why: rtmidi's JACK input (and, by its source, its CoreMIDI one) holds back *every* later message while a sysex
    that an event began has not ended with F7, until one does; a keyboard unplugged in the middle
    of a dump (``F0 01 02`` and nothing more) leaves the performer unheard, then all their notes
    arrive at once as one call. This port of improv's own, connected to its input, sends a lone
    F7 every ``every_s``: it ends such a wait (the notes held back arrive at most that late, and
    ``MidiParser`` drops the sysex at their first status byte); with no sysex pending, rtmidi
    delivers it alone and the input's queue drops it unseen. A long sysex split over several
    events may be cut by it: improv has no use for those (its loopback probe is one short event).
    """

    def __init__(self, api: int, client_name: str, every_s: float = 0.05, settle: Callable[[], None] = no_settle) -> None:
        self._rt = new_client("MidiOut", api, f"{client_name}-release")  # its port: is_release_port
        self._settle = settle  # before its port closes: see rtmidi_client
        self._every_s = every_s
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the sending thread vs. connect/close on the loop's thread
        self._thread = threading.Thread(target=self._run, name="improv-sysex-release", daemon=True)
        self._thread.start()

    def destinations(self) -> list[str]:
        return self._rt.get_ports()

    def connect(self, destination: str) -> bool:
        """Connect to improv's input port (its name as others see it); False when it is not listed."""
        with self._lock:
            names = self._rt.get_ports()
            if destination not in names:
                return False
            close_port(self._rt, self._settle)
            self._rt.open_port(names.index(destination), "release")
            return True

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            with self._lock:
                if self._rt is None:
                    return
                if self._rt.is_port_open():
                    self._rt.send_message([0xF7])

    def close(self, server_gone: bool = False) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        with self._lock:
            rt, self._rt = self._rt, None
        if server_gone:
            abandon(rt)
        elif rt is not None:
            close(rt, self._settle)
