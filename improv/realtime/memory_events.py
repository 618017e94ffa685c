"""The session memory's events as its n-gram tables see them (``realtime.memory``): each event's
classes and interval, the contexts each table predicts from, and the symbol it counts."""

from __future__ import annotations

from typing import Sequence

MAX_INTERVAL = 24  # larger leaps are not counted as intervals
TABLES = ("offset", "interval", "pc", "duration", "velocity", "register", "ending")


class Feat:
    """An event as the tables see it: its classes, its interval from the event before, and whether
    it ended the performer's phrase (``last``)."""

    __slots__ = ("pitch", "offset", "duration", "velocity", "interval", "chord", "last")

    def __init__(self, row: Sequence[int], before: "Feat | None", last: bool = False) -> None:
        self.pitch, self.offset, self.duration, self.velocity = (int(x) for x in row)
        self.last = last
        self.chord = before is not None and self.offset == 0
        step = None if before is None else self.pitch - before.pitch
        self.interval = step if step is not None and abs(step) <= MAX_INTERVAL else None


def contexts(table: str, h: Sequence[Feat], now: Feat | None) -> list[tuple]:
    """The contexts (lowest order first) a table predicts from: ``h`` the events before (latest
    last), ``now`` the event's fields drawn already (offset before duration)."""
    if table == "offset":
        past = [f.offset for f in h[-3:]][::-1]
        return [tuple(past[:k]) for k in range(len(past) + 1)]
    if table == "interval":
        chord = now is not None and now.chord
        out = [(), (chord,)]
        if h and h[-1].interval is not None:
            out.append((chord, h[-1].interval))
            if len(h) > 1 and h[-2].interval is not None:
                out.append((chord, h[-1].interval, h[-2].interval))
        return out
    if table == "pc":
        return [(), (h[-1].pitch % 12,)] if h else [()]
    if table in ("register", "ending"):
        return [()]  # which keys were played at all (the window the pitches keep to); how long a phrase's last note is
    if table == "duration":
        assert now is not None
        out = [(), (now.offset,)]
        return out + [(now.offset, h[-1].duration)] if h else out
    return [(), (h[-1].velocity,)] if h else [()]  # velocity


def symbol(table: str, f: Feat) -> int | None:
    if table == "offset":
        return f.offset
    if table == "interval":
        return None if f.interval is None else f.interval + MAX_INTERVAL
    if table == "pc":
        return f.pitch % 12
    if table == "register":
        return f.pitch
    if table == "ending":
        return f.duration if f.last else None
    return f.duration if table == "duration" else f.velocity
