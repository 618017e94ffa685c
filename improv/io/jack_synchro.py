"""Whether a JACK client just opened in this process got its own wake-up, or a dead one (libjack's
stale synchro slot: a client that JACK never runs).

Why: libjack (jack2, the copy python-rtmidi's wheel brings too) keeps one table of wake-ups
(futexes, shared memory named ``jack_sem.UID_SERVER_CLIENT``) per *process*, indexed by the
server's client number, and a client that opens takes the one already in its number's slot
("Already connected"). Every client of the process fills the slots of the others it is told
about: when another program's client opens, each of ours maps its wake-up; when it closes, that
slot is emptied, but only once our notification thread gets to the message, asynchronously. A
client of ours opened in that window, on the number just freed, waits on the wake-up of a client
that is gone: JACK triggers it every cycle (jackd's log: "client = improv1 was not finished,
state = Triggered") and it never runs. An input so made hears nothing, an output sends nothing,
while JACK's graph shows it connected. Seen in ``tests/test_memory_jack.py``, where two
``improv serve`` start at once: one's input client took the slot of the other's transient
``improv-probe``, and that server never heard its performer. On a stage, any other JACK program
(a patchbay, ``jack_lsp``, a second improv) opening and closing a client while improv opens its
ports could do the same.

The check: a client that got its own wake-up has it mapped, under its own name (JACK's, which
may carry a ``-01``), newly since before it opened (``/proc/self/maps``). Where that cannot be
read (not Linux, another synchronisation), nothing is known and the client is taken as it is.
"""

from __future__ import annotations

import re
from typing import Iterable

_SYNCHRO = re.compile(r"/jack_sem\.\d+_(\S+)$")  # .../jack_sem.UID_SERVER_CLIENT (SERVER_CLIENT kept whole)


def mapped_synchros(maps: Iterable[str] | None = None) -> set[str] | None:
    """The wake-ups this process has mapped (``SERVER_CLIENT``, those of closed clients left out),
    or None where that cannot be read. ``maps``: the lines of /proc/self/maps (read when None)."""
    if maps is None:
        try:
            with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
                maps = f.readlines()
        except OSError:
            return None
    found = set()
    for line in maps:
        line = line.rstrip("\n")
        if line.endswith(" (deleted)"):
            continue  # a closed client's, still mapped: never ours
        match = _SYNCHRO.search(line)
        if match:
            found.add(match.group(1))
    return found


def own_synchro(client_name: str, before: set[str] | None, after: set[str] | None) -> bool:
    """Whether the client opened as ``client_name`` between the two looks got a wake-up of its own:
    one under its name (or JACK's ``name-NN``) mapped now and not before. True where nothing can
    be told (no look, or no wake-up mapped at all: another synchronisation than futexes)."""
    if before is None or after is None or not after:
        return True
    own = re.compile(r".*_" + re.escape(client_name) + r"(-\d+)?")
    return any(own.fullmatch(name) for name in after - before)
