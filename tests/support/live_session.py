"""A real-time session with its live page, for the monitor's tests: the real serve loop on the
real clock in a thread of its own, a scripted performer, a predictable model, in-memory output.

    with LiveSession(calls=3) as live:
        live.monitor.url, live.engine, live.sent() ...
"""

from __future__ import annotations

import threading

from improv.io.clock import RealClock
from improv.io.memory_ports import MemoryOutput, ScriptedInput
from improv.monitor.live import LiveMonitor
from improv.realtime.engine import Engine
from improv.session.loop import ServeLoop
from improv.settings.serve_section import ServeSettings
from support.fakes import LadderModel, phrase

SETTINGS = ServeSettings(estimate_tempo=False, keep_key=False, response_unit="events", response_length=12.0)


class LiveSession:
    def __init__(self, calls: int = 3, gap_s: float = 5.0, lead_s: float = 1.0, settings: ServeSettings = SETTINGS, host: str = "127.0.0.1") -> None:
        self.clock = RealClock(settings.spin_ms / 1000)
        self.performer = ScriptedInput(self.clock)
        start = self.clock.now() + lead_s
        for k in range(calls):  # phrases of four notes; the silence after each is the answer's turn
            for t, msg in phrase([60 + 2 * k, 64, 62 + k, 67], start=start + k * gap_s, step=0.3, length=0.25):
                self.performer.add(t, msg)
        self.out = MemoryOutput(self.clock)
        self.engine = Engine(LadderModel(), settings)
        self.lines: list[str] = []
        self.monitor = LiveMonitor(host, 0, 20.0)
        wake = threading.Event()
        inport, outport, say = self.monitor.attach(self.engine, settings, self.clock, wake, self.performer, self.out, self.lines.append, "ladder")
        self.loop = ServeLoop(self.engine, inport, outport, self.clock, on_status=say, wake=wake)
        self._thread = threading.Thread(target=self.loop.run, name="serve-loop", daemon=True)

    def sent(self) -> list:
        return list(self.out.sent)  # a copy: the loop thread appends to it

    def __enter__(self) -> "LiveSession":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.request_stop()
        self._thread.join(10)
        self.monitor.close()
