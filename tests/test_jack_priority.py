"""The serve loop runs below JACK's client threads.

Why (the serve benchmark's stall): at SCHED_FIFO 5, the priority `jackd -P 10` gives its clients,
the loop's model work and its spin before each send kept JACK's client threads waiting; with the
other core busy too, JACK missed its cycle and the notes just sent were lost. No timing is
asserted: what is checked is the priority the loop's thread has while it serves, against the
priority of the JACK client threads in the same process.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from support.fakes import LadderModel
from support.jack_server import running_jack

from improv.io.input_poller import THREAD_NAME
from improv.session import process
from improv.session.process import loop_priority


def test_the_loop_priority_is_below_jacks_client_threads():
    assert loop_priority(5, None) == (5, "")  # not on JACK: as asked
    assert loop_priority(5, 70)[0] == 5  # a usual JACK setup (-P 75 or so): as asked
    assert loop_priority(5, 5)[0] == 4  # jackd -P 10: its clients at 5, the loop below them
    assert loop_priority(5, 2)[0] == 1
    assert loop_priority(5, 1)[0] == 0  # nothing below 1 but normal scheduling
    assert loop_priority(5, 0)[0] == 0  # JACK not real-time: a real-time loop would hold it up
    assert loop_priority(0, 5) == (0, "")  # asked for none: none
    assert "below JACK's client threads at 5" in loop_priority(5, 5)[1]


def test_serve_asks_for_the_priority_below_jack_and_says_so(monkeypatch):
    from improv.io.clock import FakeClock
    from improv.io.memory_ports import MemoryOutput, ScriptedInput
    from improv.realtime.engine import Engine
    from improv.session.loop import ServeLoop
    from improv.settings.serve_section import ServeSettings

    asked = []
    monkeypatch.setattr(process, "realtime_scheduling", lambda p: (asked.append(p), (f"real-time priority {p}", lambda: None))[1])
    clock = FakeClock()
    lines: list[str] = []
    loop = ServeLoop(Engine(LadderModel(), ServeSettings()), ScriptedInput(clock), MemoryOutput(clock), clock, on_status=lines.append)
    process.serve(loop, until=1.0, handle_signals=False, realtime_priority=5, jack_clients=5)
    assert asked == [4]
    assert any("real-time priority 4 (below JACK's client threads at 5)" in line for line in lines), lines


def test_the_timing_line_is_said_once_sigterm_is_handled(monkeypatch):
    """Supervisors and the JACK tests send SIGTERM from the timing line on: by then the stop
    signals must be improv's (a clean exit), not the default death by the signal (before: said
    first, and a SIGTERM in the gap killed the process, exit -15)."""
    import signal

    from improv.io.clock import FakeClock
    from improv.io.memory_ports import MemoryOutput, ScriptedInput
    from improv.realtime.engine import Engine
    from improv.session.loop import ServeLoop
    from improv.settings.serve_section import ServeSettings

    monkeypatch.setattr(process, "realtime_scheduling", lambda p: ("normal scheduling", lambda: None))
    handlers: list[object] = []

    def said(line: str) -> None:
        if line.startswith("improv: timing:"):
            handlers.append(signal.getsignal(signal.SIGTERM))

    clock = FakeClock()
    loop = ServeLoop(Engine(LadderModel(), ServeSettings()), ScriptedInput(clock), MemoryOutput(clock), clock, on_status=said)
    process.serve(loop, until=0.5, realtime_priority=0)
    assert len(handlers) == 1 and handlers[0] not in (signal.SIG_DFL, signal.SIG_IGN, None), handlers


def test_the_sessions_input_poller_runs_at_the_loops_priority_and_no_other_poller_does(monkeypatch):
    """The poller's priority is its own (passed in by the session), not a class-wide value: a
    second input's poller (another session in the process, a test's) keeps normal scheduling, and
    the session's is back to it when the session ends."""
    from improv.io.arrivals import ArrivalQueue
    from improv.io.clock import FakeClock
    from improv.io.input_poller import InputPoller
    from improv.io.memory_ports import MemoryOutput, ScriptedInput
    from improv.realtime.engine import Engine
    from improv.session.loop import ServeLoop
    from improv.settings.serve_section import ServeSettings

    monkeypatch.setattr(process, "realtime_scheduling", lambda p: (f"real-time priority {p}", lambda: None))
    session, other = InputPoller(ArrivalQueue()), InputPoller(ArrivalQueue())
    seen = []
    clock = FakeClock()

    class Watching(ScriptedInput):
        def iter_stamped(self):
            seen.append((session.priority, other.priority))
            return super().iter_stamped()

    loop = ServeLoop(Engine(LadderModel(), ServeSettings()), Watching(clock), MemoryOutput(clock), clock)
    process.serve(loop, until=1.0, handle_signals=False, realtime_priority=5, jack_clients=5, poller=session)
    assert seen and set(seen) == {(4, 0)}  # while it served: the loop's priority, below JACK's clients
    assert (session.priority, other.priority) == (0, 0)  # undone at the end


@pytest.fixture(scope="module")
def jack():
    yield from running_jack()


def fifo_threads() -> dict[int, int]:
    """This process's SCHED_FIFO threads: {thread id: priority}."""
    out = {}
    for tid in map(int, os.listdir("/proc/self/task")):
        try:
            if os.sched_getscheduler(tid) == os.SCHED_FIFO:
                out[tid] = os.sched_getparam(tid).sched_priority
        except OSError:
            pass  # a thread that ended meanwhile
    return out


@pytest.mark.jack
def test_a_live_session_on_jack_serves_below_jacks_client_threads(jack):
    """The real loop, its ports on a private jackd: while it serves, its own thread's priority is
    below every JACK client thread's (improv's ports' own among them)."""
    from improv.io.clock import RealClock
    from improv.io.watched_ports import MidiPorts, PortChoice
    from improv.realtime.engine import Engine
    from improv.session.loop import ServeLoop
    from improv.settings.serve_section import ServeSettings

    wake = threading.Event()
    ports = MidiPorts(PortChoice(api="jack", virtual=True, client_name="prio"), wake)
    try:
        jack_clients = ports.jack_client_priority()
        assert jack_clients is not None
        seen: list[tuple[int, int]] = []
        pollers: list[list[int]] = []  # the input poller threads' priorities, each turn

        class Watched:  # the loop's input, noting the loop thread's own scheduling each turn (then stopping it)
            def iter_stamped(self):
                seen.append((os.sched_getscheduler(0), os.sched_getparam(0).sched_priority))
                pollers.append([os.sched_getparam(t.native_id).sched_priority for t in threading.enumerate() if t.name == THREAD_NAME])
                if len(seen) >= 5:
                    loop.request_stop()
                return ports.input.iter_stamped()

        clock = RealClock()
        loop = ServeLoop(Engine(LadderModel(), ServeSettings()), Watched(), ports.output, clock, wake=wake, idle_s=0.02)
        process.serve(loop, until=clock.now() + 60, handle_signals=False, realtime_priority=5, jack_clients=jack_clients, poller=ports.input.poller)
        time.sleep(0.05)  # the pollers put themselves back within a poll
        others = fifo_threads()  # JACK's client threads (the loop thread is back to normal by now)
        assert seen
        policy, priority = seen[-1]
        if jack_clients > 0:  # JACK real-time (jackd as root or with an rtprio limit)
            assert set(others.values()) == {jack_clients}, others  # the pollers' priority undone too
            assert priority < jack_clients, (priority, jack_clients)
            # The input's poller takes the GIL often: at the loop's priority, never preempted holding it.
            assert pollers[-1] and set(pollers[-1]) == {priority}, (pollers[-1], priority)
        else:  # JACK without real-time scheduling: neither is the loop
            assert policy != os.SCHED_FIFO
    finally:
        ports.close()


@pytest.mark.jack
def test_improv_serve_on_jack_says_it_runs_below_jacks_client_threads(jack, tmp_path):
    """The command itself (serve_session) hands JACK's client priority to the loop: its first
    timing line says where the loop runs."""
    from improv.io.jack_watch import jack_client_priority
    from support.serve_process import serve_cmd, served, stop, tiny_checkpoint_file

    clients = jack_client_priority("asker")
    assert clients is not None
    with served(jack, serve_cmd(tiny_checkpoint_file(tmp_path), "--virtual")) as s:
        line = s.lines.wait_for("improv: timing:", timeout=30)
        stop(s.proc, s.lines)
    if clients == 0:
        assert "JACK runs without real-time priority, so improv does too" in line, line
    elif clients <= 5:  # the default realtime_priority (5) is not below them
        assert f"below JACK's client threads at {clients}" in line, line


@pytest.mark.jack
def test_improvs_ports_put_three_clients_in_jacks_cycle(jack):
    """Every JACK client with a process callback is a real-time thread JACK wakes in turn each
    period; the more of them, the more chances of an xrun. improv's own: its input, its output
    and the input's sysex release. Listing ports and watching the server take none (before: two
    more, rtmidi's lister)."""
    from improv.io.watched_ports import MidiPorts, PortChoice

    before = set(fifo_threads())
    ports = MidiPorts(PortChoice(api="jack", virtual=True, client_name="count"), threading.Event())
    try:
        if ports.jack_client_priority() == 0:
            pytest.skip("JACK runs without real-time scheduling here: its client threads cannot be told apart")
        assert len(set(fifo_threads()) - before) == 3
        ports.check()  # listing the ports adds none
        assert len(set(fifo_threads()) - before) == 3
    finally:
        ports.close()
