"""Real-time figures of `improv serve`, through real JACK MIDI ports of a private jackd.

* ``send_late_p50_ms`` / ``_p99_ms`` / ``_max_ms``: how late each message left (the port's send
  call returned) against its scheduled time, over several exchanges and one long answer.
  Targets: p99 <= 1 ms, max <= 5 ms.
* ``recv_late_*``: the same messages as a listener in another process received them through
  JACK, against the moment each send began (adds JACK's own delivery: up to about a period,
  ``jack_period_ms``; the listener polls, ``LISTEN_POLL_S``). Each received message is matched to
  the one sent by content, in order (``recv_missing``: how many sent were never matched by what
  came; ``recv_missing_note_offs``: of those, note-offs): matched k-th to k-th, one lost note made
  every later one look a beat late (the old "300 ms stall"). ``jack_xruns``: cycles JACK could not finish
  during the session, counted by a client in a process of its own (``--xruns``): the MIDI of such
  a cycle can be lost. ``recv_missing_before_xrun``: of the messages missing, those sent at most
  20 ms before an xrun. A second listener on the same port says whose loss it was
  (``recv_missing_listener2``; ``recv_missing_at_both``: missing at both, so never sent whole into
  JACK's graph by improv's port; a message missing at one listener only was lost by a receiver
  that missed its cycle).
* ``response_overhead_ms`` (median; ``_max_ms``): the machine's part of the time from the
  end-of-call decision (last release stamped on arrival + silence threshold) to the first answer
  note leaving: that note's lateness against its scheduled time, plus any model work done at the
  decision (``Exchange.overhead_s``). Target <= 5 ms. The answer starts on the call's next beat
  (``serve.answer_grid_beats``): that musical wait is ``response_wait_ms`` (median; ``_max_ms``),
  between 0 and a beat (300 ms at 200 bpm), and is not overhead.
  ``response_e2e_overhead_ms``: performer's last release sent -> first answer note received,
  minus the threshold and the musical wait: the whole round trip through JACK, both ways.

``--serve-monitor sse`` attaches the live page (``serve --monitor``) and a client in another
process that reads its event stream throughout; ``--serve-monitor browser`` opens the page in
headless Chromium instead (it draws the piano roll at the screen's rate). The lateness figures
then say whether the page slows the loop; ``monitor_events`` is what the client received.

The model does the real work of the default voice (``voice.default``: a 2-layer LSTM of 256 units;
an untrained one of the default architecture where it is missing), with its
answers kept dense (offsets of at most a sixteenth at 200 bpm) so the timing is measured under
many notes. Without jackd the same session runs with an in-memory output (``real_ports`` = 0).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # tests/support: the private jackd the JACK test uses too
sys.path.insert(0, str(REPO))

THRESHOLD_MS = 600.0
LISTEN_POLL_S = 0.0002  # the listener's poll: its stamps are at most this (plus a wake-up) late
BPM = 200.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--serve-events", type=int, default=240, help="notes in the long answer (default 240)")
    parser.add_argument("--serve-exchanges", type=int, default=4, help="short exchanges before it, each ended by a barge-in (default 4)")
    parser.add_argument("--serve-period", type=int, default=64, help="JACK period in frames at 48 kHz (default 64)")
    parser.add_argument("--serve-priority", type=int, default=None, help="real-time priority of the loop (default: serve.realtime_priority; 0 = normal)")
    parser.add_argument("--serve-checkpoint", default=None, help="model file (default: the default voice, else an untrained one of the default architecture)")
    parser.add_argument("--serve-monitor", choices=["none", "sse", "browser"], default="none", help="attach the live page and a client reading it: an SSE reader in another process, or headless Chromium (default: none)")


class Dense:
    """The model's real work per event, with answers kept dense (timing under load)."""

    def __init__(self, model) -> None:
        from improv.music.tokenizer import DURATION, OFFSET

        self.model = model
        self.tokenizer = model.tokenizer
        self._offset, self._duration = OFFSET, DURATION

    def initial_state(self):
        return self.model.initial_state()

    def step(self, state, row):
        return self.model.step(state, row)

    def prime(self, rows, state=None):
        return self.model.prime(rows, state)

    def sample_event(self, state, rng, params, pitch_mask=None, guide=None):
        row = self.model.sample_event(state, rng, params, pitch_mask, guide)
        row[self._offset] = min(int(row[self._offset]), 3)  # chords stay chords; gaps at most a sixteenth
        row[self._duration] = max(1, min(int(row[self._duration]), 6))
        return row


def load_model(checkpoint: str | None = None):
    """The model that plays: ``checkpoint``, else the default voice; an untrained model of the
    default architecture (the same work per step) where neither is there."""
    from improv.errors import ImprovError
    from improv.model.voices import load_player, model_location
    from improv.settings.sections import Settings

    try:
        return load_player(model_location(None, checkpoint, Settings().voice.default)).step_model(), 1
    except ImprovError:
        if checkpoint:
            raise
    from improv.model.step_model import random_step_model
    from improv.settings.sections import ModelSettings

    m = ModelSettings()  # the default architecture, cell included
    return random_step_model(hidden_size=m.hidden_size, num_layers=m.num_layers, embed_dim=m.embed_dim, cell=m.cell, conditional_heads=m.conditional_heads), 0


class QueueInput:
    """A thread-safe input for the in-memory fallback: the performer thread puts (stamped then,
    as rtmidi's callback does), the loop drains."""

    def __init__(self, wake: threading.Event) -> None:
        self.queue: deque = deque()
        self.wake = wake

    def put(self, msg) -> None:
        self.queue.append((time.perf_counter(), msg))
        self.wake.set()

    def iter_stamped(self):
        while self.queue:
            yield self.queue.popleft()

    def send(self, msg) -> None:  # the performer's side
        self.put(msg)


class Timestamped:
    """Wraps an output: when each send began (the loop spins to the scheduled time, then calls it:
    the scheduled time to within microseconds, unless the loop was already late, which
    ``send_late`` counts) and when it returned."""

    def __init__(self, port, clock) -> None:
        self.port, self.clock = port, clock
        self.starts: list[float] = []
        self.times: list[float] = []
        self.sent: list[list[int]] = []  # each message's bytes, to match what the listener received

    def send(self, msg) -> None:
        self.sent.append(msg.bytes())
        self.starts.append(self.clock.now())
        self.port.send(msg)
        self.times.append(self.clock.now())


def perform(performer, loop, exchanges: int, marks: dict, done: threading.Event) -> None:
    """The performer (a thread): calls of 8 notes; the first answers are interrupted by the next
    call (barge-in), the last one plays to its end."""
    import mido

    try:
        time.sleep(0.5)
        for k in range(exchanges + 1):
            notes = [60 + (k * 5 + i * 2) % 24 for i in range(8)]
            for n in notes:
                performer.send(mido.Message("note_on", note=n, velocity=70 + 5 * (n % 5)))
                time.sleep(0.08)
                performer.send(mido.Message("note_off", note=n))
                released = time.perf_counter()
                time.sleep(0.04)
            marks.setdefault("release", []).append(released)
            deadline = time.monotonic() + 10
            while len(loop.stats.exchanges) + (loop.engine.mode == "responding") <= k and time.monotonic() < deadline:
                time.sleep(0.01)
            if k < exchanges:
                time.sleep(0.8)  # let the answer play a while, then barge in with the next call
        deadline = time.monotonic() + 120
        while len(loop.stats.exchanges) <= exchanges and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        done.set()
        loop.request_stop()


def run(args) -> dict:
    from support.jack_server import JackServer

    events = getattr(args, "serve_events", 240)
    exchanges = getattr(args, "serve_exchanges", 4)
    period = getattr(args, "serve_period", 64)
    priority = getattr(args, "serve_priority", None)
    checkpoint = getattr(args, "serve_checkpoint", None)
    monitor = getattr(args, "serve_monitor", "none")
    jack = JackServer(period=period)
    reason = jack.start()
    try:
        if reason is not None:
            print(f"# serve: no JACK ({reason}); measuring with an in-memory output", file=sys.stderr)
        return session(events, exchanges, jack if reason is None else None, period, priority, checkpoint, monitor)
    finally:
        jack.stop()


def session(events: int, exchanges: int, jack, period: int, priority: int | None = None, checkpoint: str | None = None, monitor: str = "none", adapt: float | None = None) -> dict:
    from improv.io.clock import RealClock
    from improv.io.memory_ports import MemoryOutput
    from improv.io.rtmidi_ports import RtOutput
    from improv.io.watched_ports import MidiPorts, PortChoice
    from improv.model.sampling import SamplingParams
    from improv.realtime.engine import Engine
    from improv.session.loop import ServeLoop
    from improv.session.process import serve
    from improv.settings.serve_section import ServeSettings

    model, trained = load_model(checkpoint)
    settings = ServeSettings(
        silence_ms=THRESHOLD_MS,
        bpm=BPM,
        estimate_tempo=False,
        response_unit="events",
        response_length=float(events),
        max_response_events=max(events, 256),
    )
    if priority is not None:
        settings = dataclasses.replace(settings, realtime_priority=priority)
    if adapt is not None:  # the session memory's say (bench_learn: learning's share of the send budget)
        settings = dataclasses.replace(settings, adapt=adapt)
    engine = Engine(Dense(model), settings, SamplingParams(1.0, 0, 0.95), seed=0)
    clock = RealClock(settings.spin_ms / 1000)
    wake = threading.Event()
    listener = ports = xrun_log = None
    second: subprocess.Popen | None = None  # a second listener on the same port: a loss at both is improv's port's
    marks: dict = {}
    if jack is not None:
        ports = MidiPorts(PortChoice(api="jack", virtual=True, client_name="improvbench"), wake)
        in_name, out_name = ports.describe()
        listener = subprocess.Popen(
            [sys.executable, __file__, "--listen", out_name], env=jack.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        second = subprocess.Popen(
            [sys.executable, __file__, "--listen", out_name], env=jack.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert second.stdout is not None and second.stdout.readline().strip() == "ready"
        xrun_log = subprocess.Popen([sys.executable, __file__, "--xruns"], env=jack.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert xrun_log.stdout is not None and xrun_log.stdout.readline().strip() == "ready"
        from improv.io.rtmidi_ports import resolve_api

        performer = RtOutput(resolve_api("jack"), "performer", port=in_name)
        inport, out = ports.input, Timestamped(ports.output, clock)
    else:
        inport = QueueInput(wake)
        performer = inport
        out = Timestamped(MemoryOutput(clock), clock)
    timing: list[str] = []
    say = timing.append
    live = client = None
    loop_in, loop_out = inport, out
    if monitor != "none":
        from improv.monitor.live import LiveMonitor

        live = LiveMonitor("127.0.0.1", 0)
        loop_in, loop_out, say = live.attach(engine, settings, clock, wake, inport, out, say, "bench")
        client = MonitorClient(monitor, live.url)
    loop = ServeLoop(engine, loop_in, loop_out, clock, wake=wake, on_status=say)
    done = threading.Event()
    thread = threading.Thread(target=perform, args=(performer, loop, exchanges, marks, done), daemon=True)
    thread.start()
    try:
        jack_clients = ports.jack_client_priority() if ports is not None else None
        poller = ports.input.poller if ports is not None and ports.input is not None else None  # the input's poller at the loop's priority, as in a session
        stats = serve(loop, handle_signals=False, realtime_priority=settings.realtime_priority, jack_clients=jack_clients, poller=poller)
        done.wait(5)
        time.sleep(0.05)
    finally:
        if jack is not None:
            performer.close()
            ports.close()
        monitor_figures = client.close() if client is not None else {}
        if live is not None:
            live.close()
    print(f"# serve: {timing[0] if timing else ''}", file=sys.stderr)
    for line in timing[1:]:
        print(f"# serve: {line}", file=sys.stderr)
    from improv.session.process import loop_priority

    figures: dict = {"real_ports": 1 if jack is not None else 0, "serve_model_trained": trained}
    figures["serve_realtime_priority"] = loop_priority(settings.realtime_priority, jack_clients)[0]  # as the session sets it
    figures.update(monitor_figures)
    figures.update(stats.lateness_ms())
    figures["serve_messages"] = stats.sent
    figures["serve_memory_events"] = engine.memory.events  # what the session memory learned meanwhile
    answers = [ex for ex in stats.exchanges if ex.first_sent_at is not None]
    overhead = np.array([ex.overhead_s for ex in answers]) * 1000
    wait = np.array([ex.wait_s for ex in answers]) * 1000
    figures["response_overhead_ms"] = float(np.median(overhead)) if overhead.size else float("nan")
    figures["response_overhead_max_ms"] = float(overhead.max()) if overhead.size else float("nan")
    figures["response_wait_ms"] = float(np.median(wait)) if wait.size else float("nan")
    figures["response_wait_max_ms"] = float(wait.max()) if wait.size else float("nan")
    figures["serve_exchanges"] = len(stats.exchanges)
    figures["serve_sync_model_units"] = int(sum(ex.sync_units for ex in stats.exchanges))
    if listener is not None:
        assert listener.stdin is not None and listener.stdout is not None
        listener.stdin.close()
        received = json.loads(listener.stdout.readline())
        listener.wait(10)
        figures.update(receive_figures(received, out.starts, marks.get("release", []), answers, out.sent))
        assert second is not None and second.stdin is not None and second.stdout is not None
        second.stdin.close()
        also = json.loads(second.stdout.readline())
        second.wait(10)
        figures.update(missing_at_both(out.sent, received, also))
        figures["jack_period_ms"] = period / 48.0
        assert xrun_log is not None and xrun_log.stdin is not None and xrun_log.stdout is not None
        try:  # communicate closes its stdin, the sign to stop; its close can hang: jackd blocks writing to its notification socket, full after a flood of xruns
            xruns = json.loads(xrun_log.communicate(timeout=30)[0].splitlines()[0])
        except (subprocess.TimeoutExpired, IndexError, ValueError):
            xrun_log.kill()
            xrun_log.wait()
            xruns = None
        figures["jack_xruns"] = -1 if xruns is None else xrun_count(xruns, out.starts[0], out.starts[-1]) if out.starts else 0
        xruns = xruns or []
        seen = {k for k, _ in matched(out.sent, [data for _, data in received])}
        lost_at = [out.starts[k] for k in range(len(out.sent)) if k not in seen]
        figures["recv_missing_before_xrun"] = sum(1 for t in lost_at if any(0 <= x - t <= 0.02 for x in xruns))
    return figures


def matched(sent: list, received: list) -> list[tuple[int, int]]:
    """(k sent, j received) for each message received, matched by its bytes in order (JACK keeps
    order): a message lost does not shift every later one onto its neighbour."""
    import difflib

    blocks = difflib.SequenceMatcher(None, [tuple(b) for b in sent], [tuple(b) for b in received], autojunk=False).get_matching_blocks()
    return [(a + i, b + i) for a, b, n in blocks for i in range(n)]


def receive_figures(received, sent_times, releases, answers, sent_bytes=None) -> dict:
    """Lateness on arrival (each message matched to its send by content), what never arrived, and
    the round trip."""
    pairs = matched(sent_bytes, [data for _, data in received]) if sent_bytes is not None else [(k, k) for k in range(min(len(received), len(sent_times)))]
    n = len(pairs)
    late = np.array([(received[j][0] - sent_times[k]) * 1000 for k, j in pairs])  # against the send's start: see Timestamped
    out = {
        "recv_late_p50_ms": float(np.percentile(late, 50)) if n else float("nan"),
        "recv_late_p99_ms": float(np.percentile(late, 99)) if n else float("nan"),
        "recv_late_max_ms": float(late.max()) if n else float("nan"),
        "recv_missing": (len(sent_bytes) if sent_bytes is not None else len(sent_times)) - n,  # sent, never matched by what came
    }
    if sent_bytes is not None:  # a lost note-off is a note left hanging on the synth
        seen = {k for k, _ in pairs}
        out["recv_missing_note_offs"] = sum(1 for k, b in enumerate(sent_bytes) if k not in seen and (b[0] & 0xF0 == 0x80 or (b[0] & 0xF0 == 0x90 and b[2] == 0)))
    # First answer note received after each answered call's last release, less the musical wait.
    ons = [t for t, data in received if (data[0] & 0xF0) == 0x90 and data[2] > 0]
    e2e = []
    for ex in answers:
        release = max((r for r in releases if r <= ex.decided_at), default=None)
        first = next((t for t in ons if release is not None and t > release), None)
        if first is not None:
            e2e.append((first - release - ex.wait_s) * 1000 - THRESHOLD_MS)
    out["response_e2e_overhead_ms"] = float(np.median(e2e)) if e2e else float("nan")
    out["response_e2e_overhead_max_ms"] = float(max(e2e)) if e2e else float("nan")
    return out


def missing_at_both(sent_bytes: list, first: list, second: list) -> dict:
    """Which listener lost what: a message missing at one listener only was sent into JACK's
    graph by improv's port and lost by a receiver that missed its cycle (a synth can miss it the
    same way); one missing at both never left improv's port whole (or JACK lost it for everyone)."""
    seen = [{k for k, _ in matched(sent_bytes, [data for _, data in got])} for got in (first, second)]
    every = set(range(len(sent_bytes)))
    return {
        "recv_missing_listener2": len(every - seen[1]),
        "recv_missing_at_both": len(every - seen[0] - seen[1]),
    }


class MonitorClient:
    """A reader of the live page during the session: ``sse`` (another process reading the event
    stream, as a browser's EventSource does) or ``browser`` (headless Chromium showing the page)."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        self.browser = self.proc = None
        if kind == "browser":
            from support.browser import Browser

            self.browser = Browser()
            reason = self.browser.start()
            if reason is not None:
                raise SystemExit(f"--serve-monitor browser: {reason}")
            self.browser.navigate(url)
            self.browser.wait_for("document.getElementById('link').textContent === 'live'")
        else:
            self.proc = subprocess.Popen([sys.executable, __file__, "--sse", url + "events"], stdout=subprocess.PIPE, text=True)
            assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def close(self) -> dict:
        if self.browser is not None:
            shown = self.browser.evaluate("window.improvMonitor.notes.performer + window.improvMonitor.notes.improv")
            self.browser.close()
            return {"monitor_client": "browser", "monitor_notes_shown": shown}
        assert self.proc is not None and self.proc.stdout is not None
        self.proc.terminate()
        got = json.loads(self.proc.stdout.readline() or "{}")
        self.proc.wait(10)
        return {"monitor_client": "sse", "monitor_events": got.get("events", 0), "monitor_batches": got.get("batches", 0)}


def read_events(url: str) -> None:
    """SSE client process: read the stream until terminated; print how much came."""
    import signal
    import urllib.request

    counts = {"events": 0, "batches": 0}
    signal.signal(signal.SIGTERM, lambda *a: (print(json.dumps(counts), flush=True), sys.exit(0)))
    stream = urllib.request.urlopen(url, timeout=60)
    print("ready", flush=True)
    for raw in stream:
        if raw.startswith(b"data: "):
            counts["batches"] += 1
            counts["events"] += len(json.loads(raw[6:]).get("events", []))
    print(json.dumps(counts), flush=True)


def xrun_count(stamps: list[float], start: float, end: float) -> int:
    """Xruns between ``start`` and ``end``: libjack calls back once per client it found unfinished,
    so calls within 2 ms of each other are one."""
    count, last = 0, -1.0
    for t in sorted(stamps):
        if start <= t <= end and t - last > 0.002:
            count += 1
        last = t
    return count


def log_xruns() -> None:
    """Xrun-log process: a JACK client (libjack through ctypes) stamping each xrun callback with
    perf_counter until stdin closes. A process of its own: the callback needs the GIL on libjack's
    notification thread, which must never wait for a thread in a python-rtmidi call (``jack_watch``)."""
    import ctypes

    from improv.io.jack_watch import libjack

    lib = libjack()
    xrun = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
    lib.jack_set_xrun_callback.argtypes = [ctypes.c_void_p, xrun, ctypes.c_void_p]
    got: list[float] = []
    callback = xrun(lambda arg: got.append(time.perf_counter()) or 0)
    status = ctypes.c_int(0)
    client = lib.jack_client_open(b"xrunlog", 1, ctypes.byref(status))
    lib.jack_set_xrun_callback(client, callback, None)
    lib.jack_activate(client)
    print("ready", flush=True)
    sys.stdin.read()
    lib.jack_client_close(client)
    print(json.dumps(got), flush=True)


def listen(port_name: str) -> None:
    """Listener process: record (perf_counter, bytes) of every message until stdin closes. Polled,
    as improv's own input is (``io.input_poller``): a callback would take this process's GIL on
    JACK's real-time thread and make the listener a late client of JACK's cycle itself. Each poll
    stamps its newest message then and the earlier ones back by rtmidi's delta times (JACK's
    clock), so a figure received is at most ``LISTEN_POLL_S`` (plus a wake-up) late."""
    import rtmidi

    got: list = []
    midi_in = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "listener", queue_size_limit=65536)
    midi_in.ignore_types(sysex=False, timing=False, active_sense=True)
    midi_in.open_port(midi_in.get_ports().index(port_name), "in")
    stop = threading.Event()

    def poll() -> None:
        try:  # real-time, below JACK's clients and the loop: its wake-ups stay prompt on a busy machine
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        except (OSError, AttributeError):
            pass  # no privilege: ordinary scheduling (stamps later by the machine's wake-up latency)
        while not stop.is_set():
            batch = []
            while (message := midi_in.get_message()) is not None:
                batch.append(message)
            t, stamped = time.perf_counter(), []
            for data, delta in reversed(batch):  # newest first: each is its successor's time less the successor's delta
                stamped.append((t, data))
                t -= max(0.0, delta)
            got.extend(reversed(stamped))
            time.sleep(LISTEN_POLL_S)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    print("ready", flush=True)
    sys.stdin.read()
    time.sleep(0.1)
    stop.set()
    poller.join(1.0)
    print(json.dumps(got), flush=True)
    midi_in.close_port()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--listen":
        listen(sys.argv[2])
    elif len(sys.argv) == 2 and sys.argv[1] == "--xruns":
        log_xruns()
    elif len(sys.argv) == 3 and sys.argv[1] == "--sse":
        read_events(sys.argv[2])
    else:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        print(json.dumps(run(parser.parse_args()), indent=2))
