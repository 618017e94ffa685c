"""Stage-proof figures (issue 21): how late the serve loop's sends leave when the world around it
misbehaves. Three sessions of the same performance, each with the live page attached:

* ``normal``: nothing else happens;
* ``flood``: another process loops ``GET /events`` on 32 threads (what any web page could do
  with ``fetch(..., {mode: "no-cors"})``), with 6,000 events of history on the page;
* ``blocked``: the terminal is not read (a full pipe drained once every 2 s: Ctrl-S, a stalled
  SSH session), so each status line's write blocks until then.

The performance: calls of 8 notes, each answered in full (``--stage-events`` notes, the answer's
notes held up to a beat, so that its last note still sounds when the exchange's status line is
said: the moment the issue's report caught), the next call after it.

Figures per session: ``stage_<name>_send_late_p99_ms`` and ``_max_ms`` (the loop's own measure:
each send against its scheduled time; target p99 <= 1 ms), and, as a check from outside that
measure, ``stage_<name>_late_dropped`` (answer notes the engine dropped for being due too long
ago: none when the loop kept up) and ``stage_<name>_sent`` (messages that left). For the flood,
``stage_flood_served`` / ``_refused``: the flood's requests answered and refused.

The loop plays the default voice's real work (``bench_serve.Dense``) into an in-memory output
(the lateness is the loop's, not a MIDI system's), on the session's real clock and priority.
Runs unchanged on a checkout without the fixes (``main`` before issue 21), for the before figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests"))  # tests/support: the flood client the monitor's test uses too
sys.path.insert(0, str(REPO))

from support.flood import FLOOD  # noqa: E402

SCENARIOS = ("normal", "flood", "blocked")
HISTORY = 6000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage-events", type=int, default=40, help="notes in each answer (default 40)")
    parser.add_argument("--stage-exchanges", type=int, default=5, help="calls, each answered in full (default 5)")
    parser.add_argument("--stage-only", nargs="+", choices=SCENARIOS, default=list(SCENARIOS), help="sessions to run (default: all)")


def run(args) -> dict:
    figures: dict = {}
    for name in getattr(args, "stage_only", SCENARIOS):
        figures.update(session(name, getattr(args, "stage_events", 40), getattr(args, "stage_exchanges", 5)))
    return figures


class StalledTerminal:
    """A full pipe that is read once every ``every_s`` and is full again at once (a terminal held
    with Ctrl-S, let go for a moment now and then): a write blocks until the next read."""

    def __init__(self, every_s: float = 2.0) -> None:
        self.r, self.w = os.pipe()
        # a second open file of the same pipe, non-blocking, to fill it (the writer's stays blocking)
        self.filler = os.open(f"/proc/self/fd/{self.w}", os.O_WRONLY | os.O_NONBLOCK)
        self._fill()
        self.every_s = every_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def say(self, line: str) -> None:
        os.write(self.w, line.encode() + b"\n")

    def _fill(self) -> None:
        try:
            while True:
                os.write(self.filler, b"x" * 4096)
        except BlockingIOError:
            pass

    def _drain(self) -> None:
        os.set_blocking(self.r, False)
        while not self.stop.wait(self.every_s):
            try:
                while os.read(self.r, 65536):
                    pass
            except BlockingIOError:
                pass
            time.sleep(0.001)  # a line blocked until now gets written
            self._fill()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        os.close(self.r)  # a write still blocked fails (EPIPE) and ends
        os.close(self.w)
        os.close(self.filler)


def held(model):
    """``bench_serve.Dense`` (the model's real work, answers dense), with notes held longer: from
    a sixteenth up to a beat."""
    from bench_serve import Dense

    class Held(Dense):
        def sample_event(self, state, rng, params, pitch_mask=None, guide=None):
            row = super().sample_event(state, rng, params, pitch_mask, guide)
            row[self._duration] = min(int(row[self._duration]) * 3, 12)
            return row

    return Held(model)


def perform(performer, loop, calls: int, done: threading.Event) -> None:
    """The performer (a thread): ``calls`` calls of 8 notes, each after the last answer ended."""
    import mido

    try:
        time.sleep(0.5)
        for k in range(calls):
            for n in [60 + (k * 5 + i * 2) % 24 for i in range(8)]:
                performer.send(mido.Message("note_on", note=n, velocity=70 + 5 * (n % 5)))
                time.sleep(0.08)
                performer.send(mido.Message("note_off", note=n))
                time.sleep(0.04)
            deadline = time.monotonic() + 60
            while loop.stats.exchange_count <= k and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.6 + 0.3 * (k % 3))  # the last note-off (and the terminal) in between
    finally:
        time.sleep(0.5)
        done.set()
        loop.request_stop()


def session(name: str, events: int, exchanges: int) -> dict:
    from bench_serve import THRESHOLD_MS, BPM, QueueInput, Timestamped, load_model

    from improv.io.clock import RealClock
    from improv.io.memory_ports import MemoryOutput
    from improv.model.sampling import SamplingParams
    from improv.monitor.live import LiveMonitor
    from improv.realtime.engine import Engine
    from improv.session.loop import ServeLoop
    from improv.session.process import serve
    from improv.settings.serve_section import ServeSettings

    model, _ = load_model(None)
    settings = ServeSettings(silence_ms=THRESHOLD_MS, bpm=BPM, estimate_tempo=False, response_unit="events", response_length=float(events), max_response_events=max(events, 256))
    engine = Engine(held(model), settings, SamplingParams(1.0, 0, 0.95), seed=0)
    clock = RealClock(settings.spin_ms / 1000)
    wake = threading.Event()
    inport = QueueInput(wake)
    out = Timestamped(MemoryOutput(clock), clock)
    lines: list[str] = []
    terminal = StalledTerminal() if name == "blocked" else None
    say = terminal.say if terminal is not None else lines.append
    live = LiveMonitor("127.0.0.1", 0)
    flood = None
    try:
        loop_in, loop_out, status = live.attach(engine, settings, clock, wake, inport, out, say, "bench")
        if name == "flood":
            for _ in range(HISTORY):
                live.feed.post({"type": "note", "who": "performer", "channel": 0, "pitch": 60, "velocity": 80, "t": clock.now()})
            flood = subprocess.Popen([sys.executable, "-c", FLOOD, live.url + "events"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert flood.stdout is not None and flood.stdout.readline().strip() == "ready"
        loop = ServeLoop(engine, loop_in, loop_out, clock, wake=wake, on_status=status)
        done = threading.Event()
        thread = threading.Thread(target=perform, args=(inport, loop, exchanges, done), daemon=True)
        thread.start()
        stats = serve(loop, handle_signals=False, realtime_priority=settings.realtime_priority)
        done.wait(5)
    finally:
        counts = flood.communicate("", timeout=60)[0].split() if flood is not None else []
        live.close()
        if terminal is not None:
            terminal.close()
    late = stats.lateness_ms()
    figures = {
        f"stage_{name}_send_late_p99_ms": late["send_late_p99_ms"],
        f"stage_{name}_send_late_max_ms": late["send_late_max_ms"],
        f"stage_{name}_late_dropped": int(sum(ex.late_dropped for ex in stats.exchanges)),
        f"stage_{name}_sent": stats.sent,
    }
    if counts:
        figures["stage_flood_served"], figures["stage_flood_refused"] = int(counts[0]), int(counts[1])
    print(f"# stage {name}: p99 {late['send_late_p99_ms']:.3f} ms, max {late['send_late_max_ms']:.3f} ms, {stats.sent} sent, {time.strftime('%H:%M:%S')}", file=sys.stderr)
    return figures


if __name__ == "__main__":
    import json

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    print(json.dumps(run(parser.parse_args()), indent=2))
