"""A soak of `improv serve` through real JACK ports: a scripted performer for N minutes.

`python benchmarks/run.py --only soak --minutes 20`. improv serves as a process on a private jackd,
between a keyboard and a synth of the performer's (named ports, as on stage), with the shipped
voice. The performer plays calls and waits for their answers, barges in on every third answer,
sends junk between calls (sysex cut off, a sysex of 1 MB, bursts of clock, stray data bytes,
undefined status bytes, controllers and bends that are not improv's), unplugs and replugs the
keyboard a third of the way in, and kills jackd and starts it again two thirds of the way in.

Figures:

* ``soak_calls`` played, ``soak_calls_heard`` (improv's status line names the call), and
  ``soak_calls_answered`` (that line says the answer had notes); ``soak_calls_lost`` = played but
  not heard, ``soak_calls_lost_after_reconnect`` = those among the calls after a replug or a jackd
  restart.
* ``soak_hanging_notes``: notes improv left sounding on the synth (every synth's record, checked at
  its end; the synth that dies with jackd is not counted: nothing sounds on a dead synth, and the
  notes it held are ``soak_sounding_at_jackd_crash``).
* ``soak_rss_*``: improv's resident memory (MB) at the start of the soak and at its end, and its
  growth per hour: the least-squares slope of samples every 5 s after the first minute.
* ``soak_send_late_p99_ms`` / ``_max_ms``: how late improv's sends left (its own measure, printed
  at exit), over the whole soak.
* ``soak_load_avg``: the machine's 1-minute load average, mean of the samples: what else ran.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # tests/support: the private jackd and serve process the JACK tests use
sys.path.insert(0, str(REPO))

BPM = 120.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=None, help="soak length in minutes (default 20 with --only soak, else 1)")
    parser.add_argument("--soak-checkpoint", default=None, help="the voice (default: checkpoints/bach.pt)")


def run(args) -> dict:
    from support.jack_server import JackServer

    minutes = getattr(args, "minutes", None)
    if minutes is None:
        minutes = 20.0 if getattr(args, "only", None) and "soak" in args.only else 1.0
    checkpoint = getattr(args, "soak_checkpoint", None) or str(REPO / "checkpoints" / "bach.pt")
    jack = JackServer()
    reason = jack.start()
    if reason is not None:
        print(f"# soak: no JACK ({reason}); skipped", file=sys.stderr)
        return {}
    try:
        return Soak(jack, checkpoint, minutes * 60.0).run()
    finally:
        jack.stop()


class Soak:
    def __init__(self, jack, checkpoint: str, seconds: float) -> None:
        self.jack, self.checkpoint, self.seconds = jack, checkpoint, seconds
        self.rng = random.Random(0)
        self.calls = 0
        self.barge_ins = 0
        self.junk = 0
        self.boundary: tuple[int, int] | None = None  # (calls, status lines) at the first reconnection
        self.answers_received = 0
        self.hanging = 0
        self.sounding_at_crash = 0
        self.rss: list[tuple[float, float]] = []
        self.load: list[float] = []
        self.events: list[str] = []
        self.t0 = time.monotonic()  # the clock of the RSS samples

    # ---- the performer's gear -----------------------------------------------------------------

    def plug(self) -> None:
        from improv.io.rtmidi_ports import RtOutput, resolve_api
        from support.serve_process import Listener

        self.keyboard = RtOutput(resolve_api("jack"), "keyboard", virtual="keys")
        self.synth = Listener.virtual("synth")

    def synth_done(self, died: bool = False) -> None:
        """The synth's record ends: what improv left sounding on it."""
        from support.fakes import unclosed

        if died:
            self.sounding_at_crash += sum(unclosed(self.synth.got).values())
            self.keyboard.abandon()  # dead with their server: never closed
            self.synth.port.abandon()
            return
        self.synth.wait(lambda got: False, timeout=0.5)
        self.hanging += sum(unclosed(self.synth.got).values())
        self.synth.port.close()

    # ---- the soak ----------------------------------------------------------------------------

    def run(self) -> dict:
        from improv.io.jack_watch import quiet_libjack
        from support.serve_process import Lines

        quiet_libjack()  # our own clients die with jackd too: libjack's complaints are not figures
        self.plug()
        cmd = [
            sys.executable, "-m", "improv", "serve", "--api", "jack", "--checkpoint", self.checkpoint,
            "--in", "keyboard:keys", "--out", "synth:in", "--bpm", str(BPM),
            "--set", "serve.silence_ms=500", "--set", "serve.estimate_tempo=false",
            "--set", "serve.response_unit=events", "--set", "serve.response_length=8",
            "--set", "serve.reconnect_s=0.5",
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, env=self.jack.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = Lines(self.proc.stdout)
        stop = threading.Event()
        try:
            self.lines.wait_for("improv: listening on", timeout=120)
            time.sleep(0.5)
            self.t0 = time.monotonic()
            sampler = threading.Thread(target=self.sample, args=(stop,), daemon=True)
            sampler.start()
            started = time.monotonic()
            replugged = jack_restarted = False
            while time.monotonic() - started < self.seconds:
                elapsed = (time.monotonic() - started) / self.seconds
                if not replugged and elapsed > 1 / 3:
                    self.replug()
                    replugged = True
                elif not jack_restarted and elapsed > 2 / 3:
                    self.restart_jack()
                    jack_restarted = True
                self.exchange()
                if self.calls % 4 == 0:
                    self.send_junk()
            stop.set()
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
            self.synth_done()
            self.keyboard.close()
        finally:
            stop.set()
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
        return self.figures(time.monotonic() - started)

    def exchange(self) -> None:
        """One call; every third answer is interrupted by the next call (a barge-in) as soon as
        its first note has reached the synth; the others play to their end."""
        from support.fakes import unclosed
        from support.serve_process import play

        self.calls += 1
        number = self.calls
        notes = [60 + (number * 5 + i * self.rng.choice([2, 3, 4])) % 24 for i in range(self.rng.randrange(3, 8))]
        play(self.keyboard, notes, step=0.2, length=0.15, velocity=self.rng.randrange(50, 110))
        # This call's answer: a note that arrived after the call, not the tail of an answer this call
        # interrupted (counting notes from before the call took that tail for the answer once, and
        # the next call then barged in before the real answer's first note).
        played = time.perf_counter()
        if not self.synth.wait(lambda got: bool(self.synth.note_ons(after=played)), timeout=20):
            self.events.append(f"call {number}: no answer reached the synth")
            return
        self.answers_received += 1
        if number % 3 == 0:
            self.barge_ins += 1
            time.sleep(0.1)
            return  # the next call plays over this answer
        quiet_since = time.monotonic()
        heard = len(self.synth.got)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and time.monotonic() - quiet_since < 0.6:
            time.sleep(0.05)
            self.synth.poll()
            if len(self.synth.got) != heard or unclosed(self.synth.got):
                heard, quiet_since = len(self.synth.got), time.monotonic()

    def status_lines(self) -> list[str]:
        return [line for line in self.lines.rest() if re.match(r"#\d+ call ", line)]

    def segment(self) -> None:
        """A reconnection: the calls and status lines so far belong to the segment before it."""
        deadline = time.monotonic() + 15  # the last exchange's line comes when its answer ends
        while len(self.status_lines()) < self.calls and time.monotonic() < deadline:
            time.sleep(0.1)
        self.boundary = (self.calls, len(self.status_lines()))

    def send_junk(self) -> None:
        """Junk that is not notes (notes would be calls): each kind, paced as a port can take it."""
        out = self.keyboard._rt
        rng = self.rng
        out.send_message([0xF0, 0x01, 0x02])  # cut off
        out.send_message([0xF0, 0x7E, 0x01] + [rng.randrange(128) for _ in range(20)] + [0xF7])
        chunk = 1000
        for k in range(0, 1_000_000, chunk):  # a 1 MB sysex, in events a JACK buffer can take
            # (python-rtmidi sends nothing longer than 3 bytes that does not start with F0; rtmidi's
            # JACK input joins F0-started pieces until one ends with F7, as it joins a split dump)
            out.send_message([0xF0] + [0x11] * chunk + ([0xF7] if k + chunk >= 1_000_000 else []))
            if k % 8000 == 0:
                time.sleep(0.005)
        for _ in range(rng.randrange(20, 200)):
            out.send_message([0xF8])  # a clock burst
        for msg in ([0xB0, 1, rng.randrange(128)], [0xE0, rng.randrange(128), rng.randrange(128)], [0xFE], [0xF4], [0xF5, 1, 2]):
            out.send_message(msg)
        out.send_message([rng.randrange(128) for _ in range(3)])  # stray data bytes
        self.junk += 1
        time.sleep(0.6)  # the last junk is over: the next call is a call

    def replug(self) -> None:
        self.segment()
        self.keyboard.close()
        self.lines.wait_for("improv: MIDI input 'keyboard:keys' vanished", timeout=30)
        time.sleep(1.0)
        from improv.io.rtmidi_ports import RtOutput, resolve_api

        self.keyboard = RtOutput(resolve_api("jack"), "keyboard", virtual="keys")
        self.lines.wait_for("improv: MIDI input 'keyboard:keys' is back", timeout=30)
        self.events.append(f"replugged after call {self.calls}")
        time.sleep(0.5)

    def restart_jack(self) -> None:
        if self.boundary is None:
            self.segment()
        time.sleep(1.0)  # the last answer has ended
        self.synth.poll()
        self.jack.crash()
        self.lines.wait_for("improv: the JACK server stopped", timeout=30)
        self.synth_done(died=True)
        time.sleep(1.0)
        reason = self.jack.start()
        if reason is not None:
            raise RuntimeError(f"jackd would not start again: {reason}")
        self.plug()
        back = self.lines.wait_for("improv: the JACK server is back", timeout=60)
        for side, name in (("input", "keyboard:keys"), ("output", "synth:in")):
            if f"waiting for MIDI {side} {name!r}" in back:  # rebuilt before our gear was there again
                self.lines.wait_for(f"improv: MIDI {side} {name!r} is back", timeout=30)
        self.events.append(f"jackd restarted after call {self.calls}")
        time.sleep(0.5)

    def sample(self, stop: threading.Event) -> None:
        start = self.t0
        while not stop.wait(5.0):
            try:
                with open(f"/proc/{self.proc.pid}/status") as status:
                    kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
            except (OSError, StopIteration):
                continue
            self.rss.append((time.monotonic() - start, kb / 1024))
            self.load.append(os.getloadavg()[0])

    def figures(self, seconds: float) -> dict:
        lines = self.status_lines()
        answered = [line for line in lines if " · answer 0 notes" not in line]
        calls_before, lines_before = self.boundary or (self.calls, len(lines))
        out = {
            "soak_minutes": round(seconds / 60, 1),
            "soak_calls": self.calls,
            "soak_calls_heard": len(lines),
            "soak_calls_answered": len(answered),
            "soak_answers_received": self.answers_received,
            "soak_barge_ins": self.barge_ins,
            "soak_calls_lost": self.calls - len(lines),
            "soak_calls_lost_after_reconnect": (self.calls - calls_before) - (len(lines) - lines_before),
            "soak_junk_bursts": self.junk,
            "soak_hanging_notes": self.hanging,
            "soak_sounding_at_jackd_crash": self.sounding_at_crash,
        }
        if self.rss:
            t, mb = np.array(self.rss).T
            late = t > 60.0
            slope = float(np.polyfit(t[late], mb[late], 1)[0]) * 3600 if late.sum() >= 3 else float("nan")
            out.update({"soak_rss_start_mb": float(mb[0]), "soak_rss_end_mb": float(mb[-1]), "soak_rss_growth_mb_per_h": slope})
        rest = self.lines.rest()
        summary = next((line for line in reversed(rest) if "lateness p50" in line), "")
        found = re.search(r"p99 ([\d.]+) ms, max ([\d.]+) ms", summary)
        if found:
            out["soak_send_late_p99_ms"], out["soak_send_late_max_ms"] = float(found.group(1)), float(found.group(2))
        out["soak_load_avg"] = float(np.mean(self.load)) if self.load else float("nan")
        print("# soak: " + "; ".join(self.events), file=sys.stderr)
        silent = [line for line in lines if line not in answered]  # which exchange, and why, if any
        if silent:
            print("# soak: answered with no notes: " + " | ".join(silent), file=sys.stderr)
        said = [line for line in rest if line.startswith("improv:") and ("JACK" in line or "MIDI input" in line)]
        print("# soak: improv said: " + " | ".join(said), file=sys.stderr)
        return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    print(run(parser.parse_args()))
