"""`improv serve` as a child process on a private JACK server, and the JACK clients around it (a
performer, a listener): what the end-to-end JACK tests and the soak benchmark share."""

from __future__ import annotations

import contextlib
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import mido
from support.fakes import unclosed


class Lines:
    """A child's stdout, line by line, without blocking the test."""

    def __init__(self, stream) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line starting {prefix!r} within {timeout} s; got {self.seen}")

    def rest(self) -> list[str]:
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return self.seen


def serve_cmd(checkpoint: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "improv", "serve", "--api", "jack", "--checkpoint", str(checkpoint),
        "--bpm", "400",  # an untrained model picks long gaps; a fast beat keeps its answers short
        "--set", "serve.silence_ms=500",  # the performer's 50 ms gaps never end a call, even on a loaded machine
        "--set", "serve.estimate_tempo=false",
        "--set", "serve.response_unit=events",
        "--set", "serve.response_length=6",
        *extra,
    ]  # fmt: skip


class Listener:
    """Collects what improv sends, each message stamped (``time.perf_counter``) when it arrived, by
    the input's own poller (``io.input_poller``, within a millisecond): not when the test gets
    round to looking."""

    def __init__(self, port_name: str | None, client_name: str = "listener", virtual: str | None = None) -> None:
        from improv.io.rtmidi_ports import RtInput, resolve_api

        self.port = RtInput(resolve_api("jack"), client_name, port=port_name, virtual=virtual)
        self.got: list[tuple[float, mido.Message]] = []

    @classmethod
    def virtual(cls, client_name: str) -> "Listener":
        """A synth's input of its own (CLIENT:in) for improv to answer on by name."""
        return cls(None, client_name, virtual="in")

    def poll(self) -> None:
        self.got.extend(self.port.iter_stamped())

    def wait(self, test, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if test(self.got):
                return True
            time.sleep(0.005)
        return False

    def note_ons(self, after: float = 0.0) -> list[tuple[float, mido.Message]]:
        return [(t, m) for t, m in self.got if m.type == "note_on" and m.velocity > 0 and t > after]


def play(out, notes, step=0.15, length=0.1, velocity=90) -> None:
    """A performer's phrase, one note every ``step`` s held ``length`` s, on time (``send_on_time``):
    plain sleeps on a loaded machine overshoot by tens of milliseconds, which moves the call's
    onsets, so what improv hears (and answers) would depend on the machine's load."""
    events = []
    for k, n in enumerate(notes):
        events += [(k * step, mido.Message("note_on", note=n, velocity=velocity)), (k * step + length, mido.Message("note_off", note=n))]
    end = send_on_time(out, events, time.perf_counter() + 0.002)
    while time.perf_counter() < end + step - length:  # the phrase ends a gap after its last release, as before
        time.sleep(0.001)


def send_on_time(out, events: list[tuple[float, Any]], start: float) -> float:
    """Send ``(seconds after start, message)`` pairs in time order at ``start`` (perf_counter) plus
    each offset: sleep to 2 ms before, then busy-wait, so the performer's own timing adds well
    under a millisecond to what a timing test measures. Returns the last message's time."""
    events = sorted(events, key=lambda e: e[0])
    for at, msg in events:
        while time.perf_counter() < start + at - 0.002:
            time.sleep(0.001)
        while time.perf_counter() < start + at:
            pass
        out.send(msg)
    return start + events[-1][0]


def stop(proc, lines: Lines) -> None:
    """SIGTERM, as a supervisor or Ctrl-C would: improv must exit cleanly (0)."""
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, lines.rest()


def tally_in(said: list[str]) -> int | None:
    """improv's own count of the messages it sent, from its closing line ("improv: N exchanges, M
    messages sent"); None where it has not said it (yet)."""
    for line in reversed(said):
        found = re.match(r"improv: \d+ exchanges, (\d+) messages sent", line)
        if found:
            return int(found.group(1))
    return None


def sent_tally(lines: Lines, timeout: float = 10.0) -> int:
    """``tally_in``, waited for: once improv has exited cleanly, the line is on its way."""
    deadline = time.monotonic() + timeout
    while (sent := tally_in(lines.rest())) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"no closing tally from improv; got {lines.seen}")
        time.sleep(0.05)
    return sent


# For ``assert_closed_at_the_end``: no loopback probe (a sysex improv sends as its session starts,
# perhaps before the test's listener is connected), so that every message improv counts as sent
# should reach the listener, and the tally against what arrived counts what JACK lost.
NO_PROBE = ("--set", "serve.echo_probe=false")


def assert_closed_at_the_end(listener: Listener, lines: Lines) -> int:
    """``assert_closed`` for what ``listener`` got from an improv that has exited cleanly."""
    listener.wait(lambda got: False, timeout=0.3)  # the last messages in flight
    return assert_closed(listener.got, sent_tally(lines))


def assert_closed(got: list[tuple[float, Any]], sent: int | None) -> int:
    """After improv exited: every note it struck is closed in ``got`` (by its note-off or the All
    Notes Off after it) and All Notes Off came once on each of the 16 channels, as far as the
    messages that arrived can tell. JACK drops a whole cycle's messages at an xrun, and on a
    loaded machine that once took a note-off (CI): each note left open and each channel without
    its All Notes Off must be matched by a message lost on the way, counted by improv's own tally
    (``sent``) against what arrived. A note improv never closed is never excused: its tally has
    no note-off to lose. improv must run with ``NO_PROBE``. Returns how many messages were lost."""
    assert sent is not None, "improv never said how many messages it sent"
    lost = sent - len(got)
    assert lost >= 0, f"more messages arrived ({len(got)}) than improv sent ({sent})"
    left = sum(unclosed(got).values())
    all_off = [m.channel for _, m in got if m.type == "control_change" and m.control == 123]
    assert len(all_off) == len(set(all_off)) and set(all_off) <= set(range(16)), all_off
    missing = 16 - len(all_off)
    assert left + missing <= lost, f"{left} note(s) left sounding, {missing} channel(s) without All Notes Off, {lost} message(s) lost on the way"
    return lost


def tear_down(proc, *ports) -> None:
    """After a test, whatever happened in it: the serve process gone, our ports closed (None where a
    port was never made)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)
    for port in ports:
        if port is not None:
            port.close()


@dataclass
class Served:
    """`improv serve` running (``proc``, its stdout as ``lines``), a performer playing into its
    input and a listener on its output, both JACK clients of this process."""

    proc: subprocess.Popen
    lines: Lines
    performer: Any  # an RtOutput
    listener: Listener


@contextlib.contextmanager
def served(jack, cmd: list[str], cwd: Path | None = None, start_timeout: float = 60) -> Iterator[Served]:
    """Start ``cmd`` (an `improv serve --virtual` on ``jack``; in ``cwd``, for a benchmark run from
    anywhere), wait up to ``start_timeout`` for its banner, connect a performer to its input and a
    listener to its output; afterwards, whatever happened, the process gone and both ports closed
    (``tear_down``)."""
    from improv.io.rtmidi_ports import RtOutput, resolve_api

    proc = subprocess.Popen(cmd, env=jack.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)
    listener = performer = None
    try:
        lines = Lines(proc.stdout)
        banner = lines.wait_for("improv: listening on", timeout=start_timeout)
        in_name, out_name = banner.split("'")[1], banner.split("'")[3]
        performer = RtOutput(resolve_api("jack"), "performer", port=in_name)
        listener = Listener(out_name)
        yield Served(proc, lines, performer, listener)
    finally:
        tear_down(proc, listener.port if listener else None, performer)


def tiny_checkpoint_file(folder):
    """An untrained model small enough to start in a moment, for tests that run `improv serve`."""
    from improv.settings.load import load_settings
    from support.models import write_random_model

    settings = load_settings(None, ["model.hidden_size=32", "model.embed_dim=16", "model.num_layers=1"])
    return write_random_model(folder / "tiny.npz", settings.model, seed=0)
