"""Issue 21, items 2, 3, 5 and 6 in simulated time: the serve loop keeps the synth silent after an
output outage, never waits for a blocked terminal, survives errors outside the engine's guarded
calls, and bounds what can pile up (the performer's pending notes, the input's arrival queue)."""

from __future__ import annotations

import dataclasses
import os
import threading
import time

import mido
import pytest
from support.fakes import LadderModel, PolledPorts, on, phrase, simulate, unclosed
from test_serve_loop import CALL, PLAIN, rig

from improv.io.arrivals import ArrivalQueue
from improv.io.clock import FakeClock
from improv.io.memory_ports import MemoryOutput, ScriptedInput
from improv.realtime.engine import Engine
from improv.session.loop import ServeLoop
from improv.session.supervisor import PortSupervisor

# In the plain rig the answer plays 67 (1.8-2.1), 69 (2.4-2.7), 71 (3.0-3.3), 73 (3.6-3.9).


class Synth(MemoryOutput):
    """An output whose ``delivered`` is what a synth behind it heard: nothing while ``gone(t)``.
    ``fail``: sends raise then (no client); else they seem to succeed and reach nothing (a port
    that vanished on JACK)."""

    def __init__(self, clock, gone, fail: bool) -> None:
        super().__init__(clock)
        self.gone, self.fail = gone, fail
        self.delivered: list[tuple[float, mido.Message]] = []

    def send(self, msg):
        now = self.clock.now()
        if self.gone(now):
            if self.fail:
                raise OSError("the MIDI output is not open")
            return
        super().send(msg)
        self.delivered.append((now, msg))


def test_failed_sends_are_made_up_for_when_the_output_is_back():
    clock = FakeClock()
    synth = Synth(clock, lambda t: 2.5 <= t < 3.2, fail=True)  # 69's note-off and 71's note-on fail
    lines: list[str] = []
    loop = ServeLoop(Engine(LadderModel(), PLAIN), ScriptedInput(clock, CALL), synth, clock, on_status=lines.append)
    loop.run(until=10.0)
    heard = [(t, m) for t, m in synth.delivered if t < 3.35]
    assert unclosed(heard) == {}, "69 sounded on after the output came back"
    back = [m for t, m in heard if t >= 3.2]
    assert [(m.type, getattr(m, "note", None)) for m in back] == [("note_off", 71), ("note_off", 69), ("control_change", None)]
    assert back[-1].control == 123 and back[-1].channel == 0
    assert loop.stats.lost_sends == 2
    assert any("cannot send to the MIDI output" in line for line in lines)
    assert any("output is back: 2 messages could not reach it; 1 note-off sent again" in line for line in lines), lines


class VanishingPort:
    """The supervisor's view of an output that vanishes at the first check and is back at the second."""

    def __init__(self):
        self.calls = 0

    def check(self):
        self.calls += 1
        if self.calls == 1:
            return [("lost-output", "MIDI output 'synth' vanished; waiting for it to come back")]
        if self.calls == 2:
            return [("back-output", "MIDI output 'synth' is back")]
        return []


def test_a_vanished_output_gets_its_note_offs_and_all_notes_off_when_it_is_back():
    clock = FakeClock()
    synth = Synth(clock, lambda t: 2.5 <= t < 3.1, fail=False)  # 69's note-off and 71's note-on reach nothing
    lines: list[str] = []
    ports = PolledPorts(VanishingPort(), every_s=0.6, first=2.5)  # lost at 2.5, back at 3.1
    loop = ServeLoop(Engine(LadderModel(), PLAIN), ScriptedInput(clock, CALL), synth, clock, ports=ports, on_status=lines.append)
    loop.run(until=10.0)
    heard = [(t, m) for t, m in synth.delivered if t < 3.5]
    assert unclosed(heard) == {}, "69 sounded on after the output came back"
    back = [m for t, m in heard if t >= 3.1]
    # 69's lost note-off again, 71 (which improv believes sounding) ended, then All Notes Off on its channel
    assert [(m.type, getattr(m, "note", None)) for m in back] == [("note_off", 69), ("note_off", 71), ("control_change", None)]
    assert (back[-1].control, back[-1].channel) == (123, 0)
    assert any("output is back: 2 messages could not reach it" in line for line in lines), lines
    later = [m for t, m in synth.delivered if t > 3.5 and m.type == "note_on"]
    assert [m.note for m in later] == [73]  # the answer goes on


# ---- a blocked terminal -------------------------------------------------------------------------


def full_pipe() -> tuple[int, int]:
    """A pipe whose buffer is full and which nobody reads: a write to it blocks (Ctrl-S, a stalled SSH)."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        while True:
            os.write(w, b"x" * 4096)
    except BlockingIOError:
        pass
    os.set_blocking(w, True)
    return r, w


def test_a_blocked_terminal_changes_nothing_the_loop_sends():
    baseline, base_out, _ = rig()
    baseline.run(until=10.0)
    r, w = full_pipe()
    try:
        clock = FakeClock()
        out = MemoryOutput(clock)
        loop = ServeLoop(Engine(LadderModel(), PLAIN), ScriptedInput(clock, CALL), out, clock, on_status=lambda line: os.write(w, line.encode() + b"\n"))

        def session():
            loop.on_status("improv: a line before the session")  # stuck on this write from now on
            loop.run(until=10.0)

        runner = threading.Thread(target=session, daemon=True)
        runner.start()
        runner.join(timeout=20)
        assert not runner.is_alive(), "the loop waited for the terminal"
        assert out.sent == base_out.sent  # the same messages at the same times
    finally:
        os.close(r)  # the blocked write fails (EPIPE): the printer thread ends
        os.close(w)


def test_a_full_status_queue_drops_lines_and_says_how_many():
    from improv.session.printer import StatusPrinter

    gate = threading.Event()
    said: list[str] = []
    printer = StatusPrinter(lambda line: (gate.wait(10), said.append(line)), capacity=4)
    for i in range(20):
        printer(f"line {i}")  # never waits: the printer is stuck on line 0
    assert printer.dropped >= 15
    gate.set()
    printer.close(timeout_s=10)
    assert said[0] == "line 0" and f"improv: {printer.dropped} status lines dropped: the terminal was not reading" in said


# ---- errors outside the engine's guarded calls --------------------------------------------------


class Brittle(Engine):
    """An engine with a bug in ``on_message``: pitch 99 raises."""

    def on_message(self, msg, now):
        if msg.type == "note_on" and msg.note == 99:
            raise RuntimeError("bug")
        super().on_message(msg, now)


def test_an_error_handling_a_message_silences_reports_once_and_plays_on():
    clock = FakeClock()
    script = list(CALL) + [(2.5, on(99)), (2.6, on(99))] + phrase([72, 74, 76], start=5.0, step=0.3, length=0.25)
    out = MemoryOutput(clock)
    lines: list[str] = []
    loop = ServeLoop(Brittle(LadderModel(), PLAIN), ScriptedInput(clock, script), out, clock, on_status=lines.append)
    loop.run(until=12.0)
    faults = [line for line in lines if "error in handling an incoming message" in line]
    assert len(faults) == 1 and loop.stats.faults == 2
    assert unclosed([(t, m) for t, m in out.sent if t <= 2.55]) == {}  # 69 (struck at 2.4) ended at once
    assert any(line.startswith("#2 call 3 notes") for line in lines), lines  # the next call is answered


class BrokenPorts:
    def __init__(self):
        self.calls = 0

    def check(self):
        self.calls += 1
        raise RuntimeError("no ports today")


def test_an_error_watching_the_ports_or_saying_a_line_does_not_end_the_session():
    baseline, base_out, _ = rig()
    baseline.run(until=10.0)
    clock = FakeClock()
    out = MemoryOutput(clock)
    ports = BrokenPorts()

    def say(line):
        raise ValueError("the status callback is broken")

    loop = ServeLoop(Engine(LadderModel(), PLAIN), ScriptedInput(clock, CALL), out, clock, ports=PolledPorts(ports, 1.0), on_status=say)
    loop.run(until=10.0)
    assert ports.calls >= 5 and out.sent == base_out.sent
    assert loop.printer.failures >= 1 and "the status callback is broken" in loop.printer.first_failure


def test_the_supervisor_reports_a_failing_check_once_and_keeps_watching():
    class Ports:
        calls = 0

        def check(self):
            self.calls += 1
            if self.calls <= 3:
                raise RuntimeError("flaky")
            return [("back-input", "MIDI input 'keys' is back")] if self.calls == 4 else []

    wake = threading.Event()
    sup = PortSupervisor(Ports(), 0.01, wake).start()
    try:
        got: list = []
        deadline = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < deadline:
            wake.wait(0.1)
            wake.clear()
            got += sup.take(0.0)
    finally:
        sup.close()
    assert got == [("fault", "watching the MIDI ports failed (RuntimeError: flaky); still watching"), ("back-input", "MIDI input 'keys' is back")]


# ---- bounds -------------------------------------------------------------------------------------


def test_one_key_held_while_playing_on_does_not_grow_the_pending_notes():
    settings = dataclasses.replace(PLAIN, max_call_beats=0.0)
    engine = Engine(LadderModel(), settings)
    script = [(0.0, on(48))]  # held all along
    script += phrase([60 + i % 12 for i in range(600)], start=0.1, step=0.1, length=0.05)
    simulate(engine, script, until=61.0)
    performer = engine._listener.performer
    assert (0, 48) in performer.held
    assert len(performer.pending) <= 64


def test_the_arrival_queue_is_bounded_during_a_stall():
    q = ArrivalQueue(capacity=8)
    for i in range(20):
        q.put([0x90, 60 + i, 80], float(i))
    assert q.dropped == 12
    assert [m.note for _, m in q.iter_stamped()] == [60 + i for i in range(8)]


def test_input_dropped_in_a_stall_releases_the_keys_held():
    clock = FakeClock()

    class Stalled(ScriptedInput):
        @property
        def dropped(self):
            return 3 if self.clock.now() >= 0.5 else 0  # their note-offs were among them

    inport = Stalled(clock, [(0.0, on(60)), (0.3, on(62))])
    clock.alarm(0.5)
    out = MemoryOutput(clock)
    lines: list[str] = []
    loop = ServeLoop(Engine(LadderModel(), PLAIN), inport, out, clock, on_status=lines.append)
    loop.run(until=5.0)
    assert any("3 incoming MIDI messages dropped" in line for line in lines), lines
    assert any(m.type == "note_on" for _, m in out.sent)  # released: the call ended and was answered


# ---- the loopback probe -------------------------------------------------------------------------


def probes(sent) -> list[float]:
    return [t for t, m in sent if m.type == "sysex"]


def test_the_loopback_probe_is_sent_at_start_and_when_a_port_comes_back_not_on_a_timer():
    clock = FakeClock()
    out = MemoryOutput(clock)
    back = [(200.0, ("back-input", "MIDI input 'keys' is back"))]

    class Ports:
        def take(self, now):
            return [back.pop()[1]] if back and now >= back[0][0] else []

        def next_check(self):
            return back[0][0] if back else None

    loop = ServeLoop(Engine(LadderModel(), PLAIN), ScriptedInput(clock, CALL), out, clock, ports=Ports())
    loop.run(until=400.0)
    assert [round(t) for t in probes(out.sent)] == [0, 200]


def test_the_loopback_probe_can_be_switched_off():
    clock = FakeClock()
    out = MemoryOutput(clock)
    loop = ServeLoop(Engine(LadderModel(), dataclasses.replace(PLAIN, echo_probe=False)), ScriptedInput(clock, CALL), out, clock)
    loop.run(until=100.0)
    assert probes(out.sent) == [] and any(m.type == "note_on" for _, m in out.sent)
