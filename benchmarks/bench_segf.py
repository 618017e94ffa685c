"""The JACK close crash, counted: how many stress runs segfault while closing improv's ports.

Each run is a process of its own (a crash is a negative return code, ``-11``) on a private jackd
(``support.jack_server``) started and stopped by this one, so a crashed run leaves nothing behind.
A run opens two sessions' ports (``MidiPorts``: virtual, JACK, both named ``twin``), lists their
names, waits 20 ms and closes both, ``--segf-cycles`` times: the loop that crashed in round 3
(python-rtmidi 1.5.8's libjack: ``jack_port_unregister`` erasing the port list that the client's
notification thread walks, see ``improv.io.rtmidi_client``).

The crash needs a loaded machine: ``--segf-hogs`` busy processes (``nice``d) run beside it. Runs
alternate between the code as it ships (``settle``: every close waits for the clients'
notifications) and the same code with that wait taken out (``no-settle``, the code before), so
both meet the same load. Figures per mode: ``runs``, ``crashed``, ``failed`` (an error, not a
crash), ``cycles_done`` (the cycles
reached before a crash, summed), ``seconds``.

This is not a test: whether a run crashes depends on the machine's load and timing (in round 3:
3 of 5 runs of 200 cycles beside three hogs), so it cannot be made to fail on demand.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--segf-runs", type=int, default=4, help="stress runs per mode (default 4)")
    parser.add_argument("--segf-cycles", type=int, default=100, help="open/close cycles per run (default 100)")
    parser.add_argument("--segf-hogs", type=int, default=3, help="busy processes beside the runs (default 3)")
    parser.add_argument("--segf-modes", default="settle,no-settle", help="modes to alternate (default settle,no-settle)")


def run(args) -> dict:
    from support.jack_server import JackServer

    runs = getattr(args, "segf_runs", 4)
    cycles = getattr(args, "segf_cycles", 100)
    modes = getattr(args, "segf_modes", "settle,no-settle").split(",")
    hogs = [
        subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", "while True: pass"])
        for _ in range(getattr(args, "segf_hogs", 3))
    ]
    figures: dict = {f"{m}_{k}": 0 for m in modes for k in ("runs", "crashed", "failed", "cycles_done", "seconds")}
    try:
        for _ in range(runs):
            for mode in modes:
                jack = JackServer()
                reason = jack.start()
                if reason is not None:
                    return {"skipped": reason}
                t0 = time.monotonic()
                try:
                    done = subprocess.run(
                        [sys.executable, __file__, "--worker", mode, str(cycles)],
                        env=jack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                    )
                finally:
                    jack.stop()
                reached = [int(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("cycle ")]
                figures[f"{mode}_runs"] += 1
                figures[f"{mode}_crashed"] += int(done.returncode < 0)
                figures[f"{mode}_failed"] += int(done.returncode > 0)  # an error, not a crash: its last line is printed
                if done.returncode > 0:
                    print(f"# segf: {mode} failed: {(done.stderr.strip().splitlines() or [''])[-1]}", file=sys.stderr)
                figures[f"{mode}_cycles_done"] += reached[-1] if reached else 0
                figures[f"{mode}_seconds"] = round(figures[f"{mode}_seconds"] + time.monotonic() - t0, 1)
                print(f"# segf: {mode} rc {done.returncode}, {reached[-1] if reached else 0} cycles", file=sys.stderr, flush=True)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    return figures


def worker(mode: str, cycles: int) -> None:
    """One stress run on the jackd named in the environment; prints each cycle done."""
    import faulthandler

    faulthandler.enable()
    from improv.io import jack_ports, rtmidi_ports
    from improv.io.watched_ports import MidiPorts, PortChoice

    if mode == "no-settle":  # the code before: closes that wait for nothing
        jack_ports.JackLister.settle = lambda self: None  # type: ignore[method-assign]
        rtmidi_ports.settle_jack = lambda: None  # type: ignore[assignment]
    for i in range(cycles):
        first = MidiPorts(PortChoice(api="jack", virtual=True, client_name="twin"))
        second = MidiPorts(PortChoice(api="jack", virtual=True, client_name="twin"))
        first.describe()
        second.describe()
        time.sleep(0.02)
        first.close()
        second.close()
        print(f"cycle {i + 1}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[3]))
    else:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        import json

        print(json.dumps(run(parser.parse_args()), indent=2))
