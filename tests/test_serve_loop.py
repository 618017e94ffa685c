"""The serve loop with a fake clock and in-memory ports: same answers as the bare engine, sends at
their exact times, loopback echoes ignored, every exit path closes every note; input stamped on
arrival (rtmidi's callback, without a MIDI system), and the machine's overhead measured apart
from the musical wait."""

from __future__ import annotations

import dataclasses
import heapq
import threading
import time

import mido
import pytest
from support.fakes import LadderModel, PolledPorts, cc, kinds, off, on, phrase, simulate, unclosed

from improv.io import rtmidi_ports as ports
from improv.io import watched_ports as watched
from improv.io.clock import FakeClock
from improv.io.memory_ports import MemoryOutput, ScriptedInput
from improv.io.arrivals import ArrivalQueue
from improv.io.input_poller import InputPoller
from improv.realtime.engine import Engine
from improv.session.loop import ServeLoop
from improv.settings.serve_section import ServeSettings

# The engine's mechanics, timed as these tests were written: a 600 ms silence, the answer on the
# first grid point after it, cut at its length. (The musical defaults are tested on their own.)
MECHANICS = dict(silence_ms=600.0, silence_beats=0.0, answer_lead_beats=0.0, phrase_ending=False)
PLAIN = ServeSettings(estimate_tempo=False, keep_key=False, **MECHANICS, response_unit="events")
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
    assert stats.lateness.max_s == 0.0 and len(stats.lateness) == len(out.sent)  # simulated time: every send exactly on time
    (ex,) = stats.exchanges
    assert ex.decided_at == pytest.approx(1.75) and ex.first_sent_at == pytest.approx(1.8)
    assert ex.wait_s == pytest.approx(0.05) and ex.overhead_s == 0.0 and ex.sync_s == 0.0
    assert any(line.startswith("#1 call 4 notes") and "first note on the beat, 50 ms after the 600 ms silence, sent 0.00 ms late" in line for line in lines)


def test_loop_shutdown_sends_all_notes_off_on_every_channel():
    loop, out, _ = rig()
    loop.run(until=2.5)  # mid-answer: 69 sounds
    tail = [(t, m) for t, m in out.sent if t == pytest.approx(2.5)]
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

    def iter_stamped(self):
        if self.clock.now() >= self.at:
            raise self.exc
        yield from super().iter_stamped()


def test_an_interrupt_still_closes_every_note():
    clock = FakeClock()
    inport = Interrupting(clock, CALL, at=2.4, exc=KeyboardInterrupt())
    out = MemoryOutput(clock)
    loop = ServeLoop(Engine(LadderModel(), PLAIN), inport, out, clock)
    with pytest.raises(KeyboardInterrupt):
        loop.run()
    assert any(m.type == "note_on" for _, m in out.sent)
    assert unclosed(out.sent) == {}


def test_stop_request_ends_the_loop_cleanly():
    loop, out, _ = rig()
    out.on_send = lambda t, m: loop.request_stop() if m.type == "note_on" else None
    loop.run()
    assert loop.clock.now() == pytest.approx(1.8)
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
    # the first look at the ports at 0.5, while both keys are down; then every second
    loop = ServeLoop(Engine(LadderModel(), PLAIN), inport, out, clock, ports=PolledPorts(ports, 1.0, first=0.5), on_status=lines.append)
    loop.run(until=5.0)
    assert any("vanished" in line for line in lines)
    assert ports.calls >= 3  # looked again every second
    # Both keys count as released when the port vanished: the call ends 0.6 s later (1.1), and
    # the answer starts on the next beat of the call (from 0).
    assert [t for t, m in out.sent if m.type == "note_on"][0] == pytest.approx(1.2)


def test_model_errors_are_reported_as_status_lines():
    loop, out, lines = rig(model=LadderModel(fail_at={6}), settings=dataclasses.replace(PLAIN, response_length=12))
    loop.run(until=20.0)
    assert any("model error" in line for line in lines)
    assert unclosed(out.sent) == {}


# ---- input stamped on arrival ----------------------------------------------------------------------


def test_arrivals_keep_their_stamps_and_join_split_messages():
    wake = threading.Event()
    arrivals = ArrivalQueue(wake)
    arrivals.put([0x90, 60, 80, 62, 90], 1.0)
    arrivals.put([0x80, 60, 0], 2.0)
    assert wake.is_set()
    arrivals.put([0x90, 64], 3.0)  # half a message: complete only with the next bytes
    arrivals.put([70], 4.0)
    got = [(t, m.type, m.note, m.velocity) for t, m in arrivals.iter_stamped()]
    assert got == [(1.0, "note_on", 60, 80), (1.0, "note_on", 62, 90), (2.0, "note_off", 60, 0), (4.0, "note_on", 64, 70)]
    assert list(arrivals.iter_stamped()) == []


class FakeMidiIn:
    """Stands in for rtmidi.MidiIn: a queue polled with get_message (improv sets no callback)."""

    def __init__(self):
        self.queue = []
        self.callback = None

    def ignore_types(self, **kw):
        pass

    def set_callback(self, callback):  # would run on JACK's thread: improv must never set one
        self.callback = callback

    def get_message(self):
        return self.queue.pop(0) if self.queue else None

    def open_virtual_port(self, name):
        pass

    def close_port(self):
        pass

    def delete(self):
        pass


def test_rt_input_is_polled_and_stamped_with_perf_counter_on_arrival(monkeypatch):
    fake = FakeMidiIn()
    monkeypatch.setattr(ports, "_client", lambda kind, api, name: fake)
    wake = threading.Event()
    port = ports.RtInput(0, "improv", virtual="in", wake=wake)
    try:
        assert fake.callback is None  # no Python on rtmidi's (JACK's real-time) thread
        before = time.perf_counter()
        fake.queue.append(([0x90, 60, 80], 0.0))  # as rtmidi's thread queues it
        assert wake.wait(1.0)
        after = time.perf_counter()
        time.sleep(0.002)  # drained later: the stamp stays the arrival
        ((t, msg),) = list(port.iter_stamped())
        assert before <= t <= after and msg.type == "note_on"
    finally:
        port.close()


def test_an_abandoned_input_leaves_no_poller_thread_behind(monkeypatch):
    """A JACK server that died leaves its clients abandoned; their pollers must end with them
    (a rebuilt client gets a poller of its own)."""
    monkeypatch.setattr(ports, "_client", lambda kind, api, name: FakeMidiIn())
    port = ports.RtInput(0, "improv", virtual="in")
    thread = port.poller._thread
    assert thread is not None and thread.is_alive()
    port.abandon()
    thread.join(1.0)
    assert not thread.is_alive()
    port.recreate(None)  # the server is back: a new client, polled again
    assert port.poller._thread is not None and port.poller._thread.is_alive()
    port.close()


def test_a_poll_keeps_the_spacing_rtmidi_measured_between_its_messages():
    arrivals = ArrivalQueue()
    poller = InputPoller(arrivals, stamp=lambda: 10.0)
    fake = FakeMidiIn()
    fake.queue += [([0x90, 60, 80], 0.5), ([0x90, 64, 80], 0.0), ([0x80, 60, 0], 0.02)]  # a chord, then a release 20 ms on
    poller._rt = fake  # polled by hand, no thread
    assert poller.poll() == 3
    assert [(round(t, 6), m.note) for t, m in arrivals.iter_stamped()] == [(9.98, 60), (9.98, 64), (10.0, 60)]


def test_a_poll_stamps_its_newest_message_by_rtmidis_clock_not_the_polls_delay():
    """The newest message of a poll is the last stamp plus rtmidi's deltas since, where that falls
    after the previous poll; else the poll's own time (a chain that cannot be right is not used)."""
    clock = iter([10.0, 10.2, 10.5, 10.6, 10.7, 11.5])
    arrivals = ArrivalQueue()
    poller = InputPoller(arrivals, stamp=lambda: next(clock))
    fake = FakeMidiIn()
    poller._rt = fake
    fake.queue.append(([0x90, 60, 80], 0.0))
    poller.poll()  # 10.0: nothing to chain from, the poll's time
    poller.poll()  # 10.2: empty
    fake.queue.append(([0x80, 60, 0], 0.3))
    poller.poll()  # 10.5: 10.0 + 0.3 came after the poll at 10.2
    fake.queue.append(([0x90, 62, 80], 0.9))
    poller.poll()  # 10.6: 10.3 + 0.9 is later than now: the poll's time
    poller.poll()  # 10.7: empty
    fake.queue.append(([0x80, 62, 0], 0.05))
    poller.poll()  # 11.5: 10.6 + 0.05 is before the last poll (10.7): the poll's time
    assert [round(t, 6) for t, _ in arrivals.iter_stamped()] == [10.0, 10.3, 10.6, 11.5]


class LateInput(ScriptedInput):
    """Messages the loop sees ``delay`` after they arrived (as after a think slice), stamped with
    their arrival."""

    def __init__(self, clock, script, delay):
        super().__init__(clock)
        self.delay = delay
        for t, msg in script:
            self.add(t, msg)
            clock.alarm(t + delay)

    def next_arrival(self):
        first = super().next_arrival()
        return None if first is None else first + self.delay

    def iter_stamped(self):
        now = self.clock.now()
        while self._queue and self._queue[0][0] + self.delay <= now:
            t, _, msg = heapq.heappop(self._queue)
            yield t, msg


def test_loop_hands_the_engine_arrival_stamps():
    exact, exact_out, _ = rig(settings=ServeSettings(keep_key=False, **MECHANICS))
    exact.run(until=10.0)
    clock = FakeClock()
    out = MemoryOutput(clock)
    loop = ServeLoop(Engine(LadderModel(), ServeSettings(keep_key=False, **MECHANICS)), LateInput(clock, CALL, 0.0025), out, clock)
    stats = loop.run(until=10.0)
    assert kinds(out.sent) == kinds(exact_out.sent)
    assert stats.exchanges[0].decided_at == pytest.approx(1.75)  # the last release's stamp + 0.6, not its drain


class SlowLadder(LadderModel):
    """A LadderModel whose every step and sample take 1 ms of the fake clock."""

    def __init__(self, clock, **kw):
        super().__init__(**kw)
        self.clock = clock

    def step(self, state, row):
        self.clock.advance(0.001)
        return super().step(state, row)

    def sample_event(self, *a, **kw):
        self.clock.advance(0.001)
        return super().sample_event(*a, **kw)


@pytest.mark.parametrize("grid", [1.0, 0.0])
def test_model_work_at_the_decision_is_overhead_even_when_the_wait_hides_it(grid):
    # The end-of-call switch while a key is down: nothing was prepared, the answer is made at the
    # decision (3 model units, 3 ms here).
    script = [(0.0, on(60)), (0.2, off(60)), (0.3, on(62)), (0.4, cc(20, 127)), (1.0, off(62))]
    clock = FakeClock()
    out = MemoryOutput(clock)
    settings = dataclasses.replace(PLAIN, answer_grid_beats=grid)
    lines: list[str] = []
    loop = ServeLoop(Engine(SlowLadder(clock), settings), ScriptedInput(clock, script), out, clock, on_status=lines.append)
    (ex,) = loop.run(until=5.0).exchanges
    assert ex.sync_units == 3 and ex.sync_s == pytest.approx(0.003)
    assert ex.decided_at == 0.4 and ex.overhead_s == pytest.approx(0.003)  # counted once
    if grid:  # on the beat (0.6): the wait hid the work, the note left on time
        assert ex.first_sent_at == pytest.approx(0.6) and ex.send_late_s == pytest.approx(0.0)
        assert "first note on the beat, 200 ms after the control, sent 0.00 ms late, 3 model units at the decision: 3.00 ms" in lines[-1]
    else:  # at once: the work made the note late
        assert ex.wait_s == 0 and ex.send_late_s == pytest.approx(0.003)
    assert unclosed(out.sent) == {}


# ---- real ports, without a MIDI system (rtmidi stood in for) ---------------------------------------


class FakeRt:
    """Stands in for rtmidi.MidiIn / MidiOut: its ports, what it opened, whether it was freed."""

    def __init__(self, ports=(), fail_open=None):
        self.ports = list(ports)
        self.fail_open = fail_open
        self.opened: str | None = None
        self.deleted = False

    def get_ports(self):
        return self.ports

    def open_port(self, index, name):
        if self.fail_open is not None:
            raise self.fail_open
        self.opened = self.ports[index]

    def open_virtual_port(self, name):
        self.opened = name

    def close_port(self):
        self.opened = None

    def delete(self):
        self.deleted = True

    def ignore_types(self, **kw):
        pass

    def set_callback(self, callback):
        pass

    def get_message(self):
        return None

    def send_message(self, data):
        pass


@pytest.mark.parametrize("kind", ["input", "output"])
@pytest.mark.parametrize("fail", ["missing", "rtmidi"])
def test_a_port_that_will_not_open_frees_its_rtmidi_client(monkeypatch, kind, fail):
    rtmidi = pytest.importorskip("rtmidi")
    error = rtmidi.RtMidiError("device busy") if fail == "rtmidi" else None
    fake = FakeRt(["keys"], fail_open=error)
    monkeypatch.setattr(ports, "_client", lambda k, api, name: fake)
    cls = ports.RtInput if kind == "input" else ports.RtOutput
    with pytest.raises((ports.PortError, rtmidi.RtMidiError)):
        cls(0, "improv", port="keys" if fail == "rtmidi" else "gone")
    assert fake.deleted  # no client left behind (a JACK or ALSA client that would stay)


def test_rt_ports_open_reopen_and_close(monkeypatch):
    fake_in, fake_out = FakeRt(["a", "b"]), FakeRt(["x"])
    monkeypatch.setattr(ports, "_client", lambda k, api, name: fake_in if k == "MidiIn" else fake_out)
    inp, out = ports.RtInput(0, "improv", port="b"), ports.RtOutput(0, "improv", virtual="out")
    assert (fake_in.opened, inp.name, inp.virtual) == ("b", "b", False)
    assert (fake_out.opened, out.name, out.virtual) == ("out", "out", True)
    inp.reopen("a")
    assert (fake_in.opened, inp.name) == ("a", "a")
    inp.close()
    out.close()
    assert fake_in.deleted and fake_out.deleted


def test_a_name_matching_several_ports_lists_every_port():
    names = ["keyboard:keys", "synth:in", "keyboard2:keys"]
    with pytest.raises(ports.PortError) as info:
        ports.match_port(names, "keys", "input")
    assert str(info.value) == (
        "'keys' matches 2 MIDI input ports; name one exactly "
        "(input ports: 'keyboard:keys' (matches), 'synth:in', 'keyboard2:keys' (matches))"
    )
    assert ports.match_port(names, "synth", "input") == "synth:in"


class FakeLister:
    def __init__(self):
        self.ins, self.outs, self.error = ["keys"], ["synth"], None

    def inputs(self):
        if self.error is not None:
            raise self.error
        return self.ins

    def outputs(self):
        return self.outs

    def close(self):
        pass


def test_a_failing_midi_system_is_a_status_line_not_a_traceback(monkeypatch):
    rtmidi = pytest.importorskip("rtmidi")
    lister = FakeLister()
    monkeypatch.setattr(watched, "resolve_api", lambda name: 0)
    monkeypatch.setattr(watched, "port_lister", lambda api, name: lister)
    monkeypatch.setattr(ports, "_client", lambda k, api, name: FakeRt(["keys", "synth"]))
    midi = watched.MidiPorts(watched.PortChoice(in_name="keys", out_name="synth"))
    assert midi.check() == []
    lister.error = rtmidi.RtMidiError("JACK server is gone")
    assert midi.check() == [("system-error", "cannot list the MIDI ports (JACK server is gone); still trying")]
    assert midi.check() == []  # said once, not every second
    lister.error = None
    assert midi.check() == [("system-back", "the MIDI ports can be listed again")]
    midi.close()


def test_a_failing_midi_system_releases_the_keys_held():
    clock = FakeClock()
    script = [(0.0, on(60)), (0.3, on(62))]  # no note-off will come
    out = MemoryOutput(clock)
    lines: list[str] = []

    class Failing:
        calls = 0

        def check(self):
            self.calls += 1
            return [("system-error", "cannot list the MIDI ports (gone); still trying")] if self.calls == 1 else []

    loop = ServeLoop(Engine(LadderModel(), PLAIN), ScriptedInput(clock, script), out, clock, ports=PolledPorts(Failing(), 1.0, first=0.5), on_status=lines.append)
    loop.run(until=5.0)
    assert "improv: cannot list the MIDI ports (gone); still trying" in lines
    assert [t for t, m in out.sent if m.type == "note_on"][0] == pytest.approx(1.2)  # released at 0.5, decided 1.1


def test_ports_close_the_output_before_the_input(monkeypatch):
    """The output first: closing it hands its last note-offs to the synth (rtmidi's JACK output
    waits for its buffer to drain), before the input's close, where rtmidi on a loaded JACK can
    crash (a JACK thread segfaulted there in round 3's stress runs, at bcfdb04 as on main)."""
    closed: list[str] = []

    class Named(FakeRt):
        def __init__(self, kind):
            super().__init__(["keys", "synth"])
            self.kind = kind

        def close_port(self):
            closed.append(self.kind)

    monkeypatch.setattr(watched, "resolve_api", lambda name: 0)
    monkeypatch.setattr(watched, "port_lister", lambda api, name: FakeLister())
    monkeypatch.setattr(ports, "_client", lambda kind, api, name: Named(kind))
    midi = watched.MidiPorts(watched.PortChoice(in_name="keys", out_name="synth"))
    midi.close()
    assert closed == ["MidiOut", "MidiIn"]


class LateClock(FakeClock):
    """Simulated time on a loaded machine: every sleep that moves time wakes ``late`` after its
    target (or after the input's arrival that ended it)."""

    def __init__(self, late: float) -> None:
        super().__init__()
        self.late = late

    def sleep_until(self, t, wake=None):
        before = self.t
        woken = super().sleep_until(t, wake)
        if self.t > before:
            self.t += self.late
        return woken


def test_a_loop_woken_late_sends_what_fell_due_before_the_next_key_as_an_on_time_loop_does():
    """The demo's real time vs --fast: a barge-in key 1 ms after an answer note's time, and the
    loop woken 4 ms late for that note (it sees the key first). The note was due first: it is
    sent, then the key stops the answer, as in simulated time; the same notes either way."""
    first, first_out, _ = rig()
    first.run(until=10.0)
    answer = [t for t, m in first_out.sent if m.type == "note_on" and m.velocity > 0]
    assert len(answer) >= 3
    due = answer[1]
    script = CALL + [(due + 0.001, on(72)), (due + 0.2, off(72))]
    played = {}
    for name, clock in (("on time", FakeClock()), ("late", LateClock(0.004))):
        out = MemoryOutput(clock)
        ServeLoop(Engine(LadderModel(), PLAIN), ScriptedInput(clock, script), out, clock).run(until=10.0)
        played[name] = [k[1:] for k in kinds(out.sent)]
        assert not unclosed(out.sent)
    on_time_notes = [k for k in played["on time"] if k[0] == "note_on" and k[2] > 0]
    assert len(on_time_notes) == 2  # the answer's first two notes, then the barge-in
    assert played["late"] == played["on time"]
