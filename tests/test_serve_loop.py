"""The serve loop with a fake clock and in-memory ports: same answers as the bare engine, sends at
their exact times, loopback echoes ignored, every exit path closes every note."""

from __future__ import annotations

import dataclasses

import mido
import pytest

from fakes import LadderModel, kinds, phrase, simulate, unclosed
from improv.clock import FakeClock
from improv.config import ServeSettings
from improv.engine import Engine
from improv.ports import MemoryOutput, ScriptedInput
from improv.serve_loop import ServeLoop

PLAIN = ServeSettings(estimate_tempo=False, keep_key=False, response_unit="events")
CALL = phrase([60, 62, 64, 65], step=0.3, length=0.25)


def rig(script=CALL, settings=PLAIN, loopback=False, model=None):
    clock = FakeClock()
    inport = ScriptedInput(clock, script)
    outport = MemoryOutput(clock, loopback=inport if loopback else None)
    engine = Engine(model or LadderModel(), settings)
    lines: list[str] = []
    loop = ServeLoop(engine, inport, outport, clock, on_status=lines.append)
    return loop, outport, lines


def test_loop_sends_what_the_engine_plans_at_the_exact_times():
    loop, out, lines = rig()
    stats = loop.run(until=10.0)
    expected = simulate(Engine(LadderModel(), PLAIN), CALL, until=10.0)
    sent = [(t, m) for t, m in out.sent if m.type != "control_change"]
    assert kinds(sent) == kinds(expected)
    assert max(stats.lateness) == 0.0  # simulated time: every send exactly on time
    (ex,) = stats.exchanges
    assert ex.first_sent_at == pytest.approx(1.75) and ex.latency_s == pytest.approx(0.0)
    assert any(line.startswith("#1 call 4 notes") for line in lines)


def test_loop_shutdown_sends_all_notes_off_on_every_channel():
    loop, out, _ = rig()
    loop.run(until=2.4)  # mid-answer: 69 sounds
    tail = [(t, m) for t, m in out.sent if t == pytest.approx(2.4)]
    assert (tail[0][1].type, tail[0][1].note) == ("note_off", 69)
    assert sorted(m.channel for _, m in tail if m.type == "control_change" and m.control == 123) == list(range(16))
    assert unclosed(out.sent) == {}


def test_loopback_echoes_are_not_the_performer():
    loop, out, _ = rig(loopback=True)
    loop.run(until=10.0)
    clean, clean_out, _ = rig()
    clean.run(until=10.0)
    assert kinds(out.sent) == kinds(clean_out.sent)


def test_raw_bytes_with_running_status_and_junk():
    # The same call as raw bytes: running status, a clock byte inside a message, stray bytes.
    script = [
        (0.0, [0x90, 60, 80]),
        (0.25, [60, 0]),  # running status: note_on 60 velocity 0 = release
        (0.3, [0x90, 62, 0xF8, 80]),  # a clock byte in the middle
        (0.55, [62, 0, 0x33]),  # a stray data byte after it
        (0.6, [0xF4, 0x90, 64, 80]),  # an undefined status byte first
        (0.85, [0x80, 64, 0]),
        (0.9, [0xF0, 1, 2, 3, 0xF7, 0x90, 65, 80]),  # sysex, then the note
        (1.15, [0x90, 65, 0]),
    ]
    loop, out, _ = rig(script=script)
    loop.run(until=10.0)
    clean, clean_out, _ = rig()
    clean.run(until=10.0)
    assert kinds(out.sent) == kinds(clean_out.sent)


class Interrupting(ScriptedInput):
    """An input that raises (as Ctrl-C would) once the clock passes ``at``."""

    def __init__(self, clock, script, at, exc):
        super().__init__(clock, script)
        self.at, self.exc = at, exc
        clock.alarm(at)

    def iter_pending(self):
        if self.clock.now() >= self.at:
            raise self.exc
        yield from super().iter_pending()


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), RuntimeError("boom")])
def test_any_exception_still_closes_every_note(exc):
    clock = FakeClock()
    inport = Interrupting(clock, CALL, at=2.4, exc=exc)
    out = MemoryOutput(clock)
    loop = ServeLoop(Engine(LadderModel(), PLAIN), inport, out, clock)
    with pytest.raises(type(exc)):
        loop.run()
    assert any(m.type == "note_on" for _, m in out.sent)
    assert unclosed(out.sent) == {}


def test_stop_request_ends_the_loop_cleanly():
    loop, out, _ = rig()
    out.on_send = lambda t, m: loop.request_stop() if m.type == "note_on" else None
    loop.run()
    assert loop.clock.now() == pytest.approx(1.75)
    assert unclosed(out.sent) == {}


class FlakyPorts:
    def __init__(self):
        self.calls = 0

    def check(self):
        self.calls += 1
        return [("lost-input", "MIDI input 'keys' vanished; waiting for it to come back")] if self.calls == 1 else []


def test_vanished_input_releases_held_keys_and_is_reported():
    clock = FakeClock()
    script = [(0.0, mido.Message("note_on", note=60, velocity=80)), (0.3, mido.Message("note_on", note=62, velocity=80))]
    inport = ScriptedInput(clock, script)
    out = MemoryOutput(clock)
    lines: list[str] = []
    ports = FlakyPorts()
    loop = ServeLoop(Engine(LadderModel(), PLAIN), inport, out, clock, ports=ports, on_status=lines.append, reconnect_s=1.0)
    loop._next_check = 0.5  # the first look at the ports, while both keys are down
    loop.run(until=5.0)
    assert any("vanished" in line for line in lines)
    assert ports.calls >= 3  # looked again every second
    # Both keys count as released when the port vanished: the call ends 0.6 s later.
    assert [t for t, m in out.sent if m.type == "note_on"][0] == pytest.approx(1.1)


def test_model_errors_are_reported_as_status_lines():
    loop, out, lines = rig(model=LadderModel(fail_at={6}), settings=dataclasses.replace(PLAIN, response_length=12))
    loop.run(until=20.0)
    assert any("model error" in line for line in lines)
    assert unclosed(out.sent) == {}
