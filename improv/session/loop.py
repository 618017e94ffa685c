"""The serve loop: one thread between the ports and the engine.

Each turn: take what arrived on the input, each message with its arrival stamp (taken in the
port's callback, so the performer's timing does not depend on when the loop drains it: a think
slice may delay that by a few milliseconds), hand it to the engine, send whatever is due, and
then either let the engine think (model work ahead of time, in slices that end well before the
next send) or sleep until the next send / wake-up. Sleeping ends early when a message arrives
(the real input sets ``wake``); the clock sleeps, then spins the last moment on
``perf_counter`` so sends leave on time. The loop wakes ``lead_s`` before a
send and takes the messages due by then from the engine, so the engine's work is done before
the send time; it then spins to each message's exact time and sends it.

Every exit path (a stop request, Ctrl-C, SIGTERM, an exception) goes through ``close``, which
sends the engine's final note-offs and All Notes Off.

Nothing on this thread may block or end the session: status lines go to a printer thread through
a bounded queue (``printer``); the ports are watched from a supervisor thread (``supervisor``),
whose findings the loop takes each turn; an error outside the engine's own guarded calls (an
incoming message the engine fails on, a port event, a status line) is reported once per kind,
what must be silenced is, and the loop goes on. Messages that could not reach the output are
made up for when it is back (``outage``).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager

import mido
import numpy as np

from improv.io.clock import Clock
from improv.realtime.engine import Engine
from improv.session.outage import Outage
from improv.session.printer import StatusPrinter


class Lateness:
    """How late each send left, in constant memory however long the session: a histogram of
    10-microsecond bins up to 50 ms (quantiles exact to 10 us), the count beyond, and the maximum."""

    BIN_S = 1e-5
    BINS = 5000

    def __init__(self) -> None:
        self.counts = np.zeros(self.BINS + 1, dtype=np.int64)  # the last bin: 50 ms or later
        self.count = 0
        self.max_s = -math.inf

    def append(self, late_s: float) -> None:
        self.counts[min(max(int(late_s / self.BIN_S), 0), self.BINS)] += 1
        self.count += 1
        if late_s > self.max_s:
            self.max_s = late_s

    def __len__(self) -> int:
        return self.count

    def quantile_ms(self, q: float) -> float:
        if not self.count:
            return math.nan
        rank = q * (self.count - 1)
        i = int(np.searchsorted(np.cumsum(self.counts), rank, side="right"))
        if i >= self.BINS:
            return self.max_s * 1000
        return min((i + 0.5) * self.BIN_S, max(self.max_s, 0.0)) * 1000


@dataclass
class LoopStats:
    """What the loop measured: how late every send left, and the exchanges (the last
    ``MAX_EXCHANGES`` of a long session)."""

    lateness: Lateness = field(default_factory=Lateness)
    exchanges: deque = field(default_factory=lambda: deque(maxlen=MAX_EXCHANGES))
    exchange_count: int = 0
    sent: int = 0
    send_errors: int = 0
    lost_sends: int = 0  # messages that could not reach the output (failed, or into a port that was gone)
    faults: int = 0  # errors caught outside the engine's guarded calls
    status_dropped: int = 0  # status lines dropped while the terminal was not reading

    def lateness_ms(self) -> dict[str, float]:
        late = self.lateness
        return {
            "send_late_p50_ms": late.quantile_ms(0.5),
            "send_late_p99_ms": late.quantile_ms(0.99),
            "send_late_max_ms": late.max_s * 1000 if late.count else math.nan,
        }


MAX_EXCHANGES = 10_000


class ServeLoop:
    """Runs an ``Engine`` between an input and an output on ``clock``; see the module docstring.

    ``inport`` needs ``iter_stamped()`` yielding (arrival time on ``clock``'s scale, message),
    or else ``iter_pending()`` (messages, stamped with the drain time); it may have
    ``next_arrival()``, for scripted input. ``outport`` needs ``send(msg)``. ``ports`` says what
    became of the ports: ``take(now)`` -> [(event, line)] and ``next_check()`` (a
    ``supervisor.PortSupervisor`` in a session; in simulated time, a fake that checks when asked).
    ``on_status`` receives one line per event worth telling, on a printer thread of its own.
    """

    def __init__(
        self,
        engine: Engine,
        inport: Any,
        outport: Any,
        clock: Clock,
        *,
        ports: Any = None,
        on_status: Callable[[str], None] | None = None,
        wake: threading.Event | None = None,
        margin_s: float = 0.002,
        lead_s: float = 0.0005,
        idle_s: float = 0.5,
        max_units: int = 8,
    ) -> None:
        self.engine = engine
        self.inport = inport
        self.outport = outport
        self.clock = clock
        self.ports = ports
        self.printer = StatusPrinter(on_status or (lambda line: None))
        self.on_status: Callable[[str], None] = self.printer  # never blocks: see ``printer``
        self.wake = wake or threading.Event()
        self.stop = threading.Event()
        self.margin_s = margin_s  # no thinking closer than this to a send
        self.lead_s = lead_s
        self.idle_s = idle_s
        self.max_units = max_units
        self.stats = LoopStats()
        self.closed = False
        self.shield: Callable[[], ContextManager[Any]] = contextlib.nullcontext  # the session's (io.signals)
        self._unit_cost = 0.0005  # seconds per model unit, learnt as the loop runs
        self.outage = Outage()
        self._restore = False  # sends work again after failing: make up for the outage (``_output_back``)
        self._faults_said: set[str] = set()
        self._dropped_in = 0  # the input's count of dropped arrivals, as last seen
        self._stamped = getattr(inport, "iter_stamped", None)

    def request_stop(self) -> None:
        """Safe from a signal handler or another thread: the loop ends at its next turn."""
        self.stop.set()
        self.wake.set()

    def run(self, until: float | None = None) -> LoopStats:
        """Serve until ``request_stop`` (or the clock reaches ``until``); always ends with ``close``."""
        try:
            while not self.stop.is_set() and (until is None or self.clock.now() < until):
                self.turn(until)
        finally:
            self.close()
        return self.stats

    def turn(self, until: float | None = None) -> None:
        """One turn: input, sends, then think or sleep."""
        engine, clock = self.engine, self.clock
        self.wake.clear()  # before draining: a message arriving after the drain still wakes the sleep
        now = clock.now()
        self._take_input(now)
        if self.ports is not None:
            self._port_events(now)
        self._send(self._due(now + self.lead_s))
        for line in engine.take_errors():
            self.on_status(f"improv: {line}")
        self._report()
        deadline = engine.next_deadline()
        now = clock.now()
        room = math.inf if deadline is None else deadline - self.lead_s - now - self.margin_s
        if room > self._unit_cost and engine.wants_think(now):
            units = int(min(self.max_units, max(1, room / max(self._unit_cost, 1e-6))))
            started = clock.now()
            done = engine.think(now, units)
            if done:
                spent = clock.now() - started
                self._unit_cost = 0.8 * self._unit_cost + 0.2 * (spent / done)
            return
        wakeup = engine.next_wakeup()
        if wakeup is not None and wakeup <= now:
            wakeup = deadline  # the engine has work, but a send comes first: wait for the send
        if wakeup is not None and wakeup == deadline:
            wakeup -= self.lead_s  # sends (and call ends) are taken early; think work is not
        target = now + self.idle_s
        for t in (wakeup, self._next_arrival(), until):
            if t is not None:
                target = min(target, t)
        check = self.ports.next_check() if self.ports is not None else None
        if check is not None:
            target = min(target, max(check, now))
        clock.sleep_until(target, self.wake)

    def close(self) -> None:
        """Send the engine's last messages (every note-off, All Notes Off), once; a second Ctrl-C
        waits until they have left (``shield``)."""
        if self.closed:
            return
        self.closed = True
        with self.shield():
            try:
                self._send(self.engine.shutdown(self.clock.now()))  # all stamped now: no waiting
                self._report()
            finally:
                self.printer.close()
                self.stats.status_dropped = self.printer.dropped

    # ---- helpers ----------------------------------------------------------------------------

    def _report(self) -> None:
        for ex in self.engine.take_reports():
            self.stats.exchanges.append(ex)
            self.stats.exchange_count += 1
            try:
                line = ex.status_line()
            except Exception as exc:  # the report of an exchange must not end the session
                self._fault("the status line", exc)
                continue
            self.on_status(line)

    def _fault(self, where: str, exc: Exception) -> None:
        """An error outside the engine's guarded calls: counted, said once per kind, and the loop goes on."""
        self.stats.faults += 1
        key = f"{where}: {type(exc).__name__}"
        if key not in self._faults_said:
            self._faults_said.add(key)
            self.on_status(f"improv: error in {where} ({type(exc).__name__}: {exc}); improv plays on")

    def _take_input(self, now: float) -> None:
        """Every message that arrived, to the engine. A message the engine fails on: everything is
        silenced (the engine may be half way through it) and the next message is handled as usual.
        Input dropped while the loop stalled (a full arrival queue): the keys held are released."""
        engine = self.engine
        try:
            dropped = getattr(self.inport, "dropped", 0)
            if dropped != self._dropped_in:
                self.on_status(f"improv: {dropped - self._dropped_in} incoming MIDI messages dropped (improv fell behind); keys held are released")
                self._dropped_in = dropped
                engine.input_lost(now)
            for t, msg in self._arrivals(now):
                # What fell due before this message was played is sent first (taken lead_s early,
                # as a turn takes it): a loop woken late (a think slice, a loaded machine) keeps
                # the order an on-time loop and simulated time have, so a barge-in does not
                # swallow the answer's notes due before it, and a seed plays the same session.
                self._send(self._due(t + self.lead_s))
                try:
                    engine.on_message(msg, t)
                except Exception as exc:
                    self._fault("handling an incoming message", exc)
                    self._silence(now)
        except Exception as exc:  # the input itself failed (what is still queued is read next turn)
            self._fault("reading the MIDI input", exc)

    def _silence(self, now: float) -> None:
        try:
            self.engine.panic(now)
        except Exception as exc:
            self._fault("silencing", exc)

    def _send(self, batch: list[tuple[float, mido.Message]]) -> None:
        if not batch:
            return
        started = self.engine.take_started()
        for t, msg in batch:
            self.clock.sleep_until(t)  # taken up to lead_s early: wait (spin) for the exact time
            try:
                self.outport.send(msg)
            except Exception as exc:  # a vanished output (or a broken tap): keep serving, report once, make up for it later
                self.stats.send_errors += 1
                self.stats.lost_sends += 1
                self.outage.missed(msg)
                if self.outage.begin("send"):
                    self.on_status(f"improv: cannot send to the MIDI output ({exc}); note-offs are sent again when it is back")
                continue
            if self.outage.down:
                if self.outage.cause == "send":
                    self._restore = True  # sends work again: make up for the outage after this batch
                else:
                    self.outage.missed(msg)  # the port is gone: this went nowhere
                    self.stats.lost_sends += 1
            sent = self.clock.now()
            self.stats.lateness.append(sent - t)
            self.stats.sent += 1
            if started is not None and started.first_sent_at is None and msg.type == "note_on":
                started.first_sent_at = sent
        if self._restore:
            self._output_back(self.clock.now())

    def _arrivals(self, now: float) -> Any:
        if self._stamped is not None:
            return self._stamped()
        return ((now, msg) for msg in self.inport.iter_pending())

    def _due(self, t: float) -> list[tuple[float, mido.Message]]:
        """``engine.due``; when it ended a call with model work left to do (the speculation was
        not ready), the time that work took goes into the exchange: machine overhead that a
        musical wait would otherwise hide."""
        started = self.clock.now()
        batch = self.engine.due(t)
        decided = self.engine.take_decided()
        if decided is not None and decided.sync_units:
            done = self.clock.now()
            decided.sync_s, decided.sync_done_at = done - started, done
        return batch

    def _next_arrival(self) -> float | None:
        next_arrival = getattr(self.inport, "next_arrival", None)
        return next_arrival() if next_arrival is not None else None

    def _port_events(self, now: float) -> None:
        """What the supervisor found: said, and acted on here (the engine is the loop's alone)."""
        try:
            events = self.ports.take(now)
        except Exception as exc:
            self._fault("watching the ports", exc)
            return
        for event, line in events:
            self.on_status(f"improv: {line}")
            try:
                if event in ("lost-input", "system-error", "system-lost"):  # keys held now will send no note-off
                    self.engine.input_lost(now)
                if event in ("lost-output", "system-lost"):
                    self.outage.begin("port")
                elif event == "back-output" or (event == "system-back" and self.outage.down and "waiting for MIDI output" not in line):
                    self._output_back(now)
                elif event == "back-input":
                    self.engine.port_back(now, "input")
            except Exception as exc:
                self._fault(f"acting on {event}", exc)

    def _output_back(self, now: float) -> None:
        """The output is back: the note-offs it missed again, then the engine's note-off for every
        note it believes sounding and All Notes Off on its channel (``Engine.port_back``)."""
        self._restore = False
        offs, lost = self.outage.end()
        self._send([(now, msg) for msg in offs])
        self.engine.port_back(now, "output")
        self._send(self._due(now))
        if lost:
            self.on_status(f"improv: the MIDI output is back: {lost} message{'s' if lost != 1 else ''} could not reach it; "
                           f"{len(offs)} note-off{'s' if len(offs) != 1 else ''} sent again, every note improv sounds ended, All Notes Off")
