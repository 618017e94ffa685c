"""One session's live page: opened first (a busy port fails in one line before anything loads),
then attached to the session's engine, clock and ports once they exist, closed at the end.

A session uses it in three steps::

    monitor = LiveMonitor(host, port, seconds)        # bound and serving: the address is known
    inport, outport, say = monitor.attach(engine, serve_settings, clock, wake, inport, outport, say)
    ...                                               # the ServeLoop runs on the tapped ports
    monitor.close()
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from improv.monitor.controls import ControlError, available, control_message
from improv.monitor.feed import Feed, Hub
from improv.monitor.server import MonitorServer, access_token, is_loopback
from improv.monitor.taps import TappedInput, TappedOutput, tapped_status
from improv.settings.serve_section import ServeSettings


@dataclass(frozen=True)
class MonitorChoice:
    """Where the page is served (``--monitor [PORT]``, ``--monitor-host``) and what it shows."""

    host: str = "127.0.0.1"
    port: int = 8765
    seconds: float = 20.0


class LiveMonitor:
    def __init__(self, host: str = "127.0.0.1", port: int = 8765, seconds: float = 20.0) -> None:
        self.feed = Feed()
        self.hub = Hub(self.feed, time.perf_counter, seconds)
        self.hub.info = {"seconds": seconds, "voices": [], "controls": {}}
        self.server = MonitorServer(self.hub, self._control, host, port, access_token(host))
        self.url = self.server.start()
        self.local = is_loopback(host)
        self._settings: ServeSettings | None = None
        self._voices = 0

    def describe(self) -> str:
        """One line for the terminal: where the page is, and who can open it."""
        who = "this machine only" if self.local else "any machine that reaches this one, with the token in the address"
        return f"improv: live page {self.url} ({who})"

    def attach(
        self,
        engine: Any,
        settings: ServeSettings,
        clock: Any,
        wake: Any,
        inport: Any,
        outport: Any,
        say: Callable[[str], None],
        voice_label: str = "",
    ) -> tuple[TappedInput, TappedOutput, Callable[[str], None]]:
        """The session's input, output and status callback, tapped for the page."""
        self.hub.now = clock.now
        self.feed.wake = wake
        self._voices = len(engine.voices)
        self.hub.info = {
            "seconds": self.hub.seconds,
            "voices": [v.name or voice_label for v in engine.voices],
            "controls": available(settings, self._voices),
            "temperature_min": settings.temperature_min,
            "temperature_max": settings.temperature_max,
        }
        self._settings = settings
        tapped_in = TappedInput(inport, self.feed, engine, clock, voice_label)
        tapped_in.post_state(clock.now())
        return tapped_in, TappedOutput(outport, self.feed, clock), tapped_status(say, self.feed, clock, tapped_in)

    def _control(self, name: str, value: Any) -> None:
        """A web thread: the control becomes a MIDI message for the loop's input."""
        if self._settings is None:
            raise ControlError("the session is still starting")
        self.feed.send(control_message(name, value, self._settings, self._voices))

    def close(self) -> None:
        self.server.close()
