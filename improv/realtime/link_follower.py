"""An Ableton Link session as the engine sees it: a tempo and beat source, like a MIDI clock.

Pure: the shell (``io/link_session.py``, the one module that imports the Link library) keeps a
``LinkView`` up to date on a thread of its own, on the loop's clock; the engine reads the latest
one (an attribute read: the live path never waits on the library) and leaves a request to lead.

The rule, as a band plays with a shared clock ("anyone can change the tempo, the others follow"):

- **improv leads while the session's tempo is its own**: alone in the session (made at
  ``serve.bpm``), or with peers that have not changed the tempo improv last set. It hears the
  performer as without Link and, when an answer starts on a heard pulse, publishes that tempo
  (alone, also a bar line on the performer's downbeat; with peers only the tempo: Link lets no
  peer shift the others' beat), so what joins plays in the performer's time.
- **improv follows once someone else sets the tempo**: it joined a session that was already
  there, or a peer changed the tempo. The session's tempo and beat are then the answer's grid
  (bars of ``serve.link_quantum`` beats from the session's phase 0), over a MIDI clock and over
  the pulse heard from the call, and improv publishes nothing. Alone again, it leads again.
"""

from __future__ import annotations

from typing import Any, Protocol

from improv.io.link_session import LinkView
from improv.realtime.clock_follower import Grid

STALE_S = 1.0  # a view older than this (the shell's thread stalled or died) is not followed
SAME_BPM, SAME_S = 0.01, 0.002  # tempi and bar lines this close are the same (Link rounds a tempo to ~1e-4 bpm)
LEAD_TAKES_S = 0.5  # the shell's views may show the tempo a lead replaced for this long


class LinkSource(Protocol):
    """What the engine needs of a Link session; neither call may block."""

    def view(self) -> LinkView | None:
        """The latest view, None before the first."""
        ...

    def lead(self, bpm: float, downbeat: float) -> None:
        """Ask for this tempo with a bar line at ``downbeat`` (loop clock), applied by the shell on
        its own thread (the bar line only where improv is alone: Link keeps peers' phase)."""
        ...


class LinkFollower:
    """Decides between following and leading (see the module docstring) from the source's view."""

    def __init__(self, source: LinkSource) -> None:
        self.source = source
        first = source.view()
        # The tempo improv set (it made the session: serve.bpm); None: someone else's (a session joined).
        self._mine: float | None = first.bpm if first is not None and first.peers == 0 else None
        self._before: tuple[float, float] | None = None  # (tempo replaced by a lead, until when a view may still show it)
        self._led: tuple[float, float] | None = None  # the last lead asked for (tempo, downbeat)

    def view(self, now: float) -> LinkView | None:
        v = self.source.view()
        return v if v is not None and now - v.at <= STALE_S else None

    def following(self, now: float) -> LinkView | None:
        """The view, while improv follows the session; None while it leads (or has no session)."""
        v = self.view(now)
        if v is None:
            return None
        if v.peers <= 0:
            self._mine = v.bpm  # alone, the session's tempo is improv's: a peer that joins it takes it
            return None
        if self._mine is not None and abs(v.bpm - self._mine) < SAME_BPM:
            return None  # the session still runs at improv's tempo: improv leads
        if self._before is not None and v.at <= self._before[1] and abs(v.bpm - self._before[0]) < SAME_BPM:
            return None  # a view from before improv's last lead took effect
        self._mine = None  # a peer set the tempo (or improv joined their session): theirs from now on
        return v

    def grid(self, now: float) -> Grid | None:
        """The session's beat grid while improv follows it; None while it leads."""
        v = self.following(now)
        return None if v is None else Grid(v.downbeat, 60.0 / v.bpm, 0, v.quantum, "Link session")

    def lead(self, pulse: Any, now: float) -> bool:
        """Leading: publish ``pulse`` (a heard ``music.pulse.Pulse``): its tempo and a bar line on
        its downbeat. True when asked for (not when following, nor for the grid already asked for)."""
        if self.view(now) is None or self.following(now) is not None:
            return False
        downbeat = pulse.time(pulse.downbeat)
        if self._led is not None:  # the same grid again (the tempo of the set kept): not asked twice
            bpm, at = self._led
            off = (downbeat - at) * bpm / 60.0
            if abs(bpm - pulse.bpm) < SAME_BPM and abs(off - round(off)) * 60.0 / bpm < SAME_S:
                return False
        if self._mine is not None:
            self._before = (self._mine, now + LEAD_TAKES_S)
        self._mine = pulse.bpm
        self._led = (pulse.bpm, downbeat)
        self.source.lead(pulse.bpm, downbeat)
        return True

    def describe(self, now: float) -> str:
        """For the status line: peers, the session's tempo, who sets it."""
        v = self.view(now)
        if v is None:
            return "Link: no session"
        peers = f"{v.peers} peer{'s' if v.peers != 1 else ''}" if v.peers else "alone"
        role = "following" if self.following(now) is not None else "leading"
        return f"Link: {peers}, {role} at {v.bpm:.1f} bpm" + (" (playing)" if v.playing else "")


class FollowsLink:
    """The engine's hooks (mixed into ``Engine``): the grid from outside, the tempo followed, the
    lead published. Uses the engine's ``link`` (a ``LinkFollower`` or None), ``_clock``, ``settings``."""

    link: LinkFollower | None
    _clock: Any
    settings: Any
    bpm: float
    tempo_source: str

    def _external_grid(self, now: float) -> Grid | None:
        """A Link session with peers, else a followed MIDI clock's transport, else None."""
        grid = self.link.grid(now) if self.link is not None else None
        if grid is None and self.settings.follow_clock:
            grid = self._clock.bar_grid(now)
        return grid

    def _follow_link(self, now: float) -> bool:
        """While improv follows the session: its tempo is improv's (the status line says whose)."""
        v = self.link.following(now) if self.link is not None else None
        if v is None:
            if self.tempo_source.startswith("Link"):
                self.tempo_source = "Link, held"  # improv leads again: their tempo until a call is heard
            return False
        source = f"Link, {v.peers} peer{'s' if v.peers != 1 else ''}"
        bpm = min(max(v.bpm, 10.0), 400.0)  # serve.bpm's range (Link allows 20-999)
        if self.bpm != bpm or self.tempo_source != source:
            self.bpm, self.tempo_source = bpm, source
        return True

    def _lead_link(self, answer: Any, now: float) -> None:
        """An answer starts on a pulse heard from the performer: leading, publish it."""
        if self.link is not None and answer.playback is not None and answer.reading.tempo_source == "estimate":
            self.link.lead(answer.playback.pulse, now)
