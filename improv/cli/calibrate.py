"""`improv calibrate`: the output latency, measured through a loopback.

Notes go out on ``--out`` and come back on ``--in`` (a synth's MIDI thru, a JACK or IAC loop);
each round trip is timed with the same clock that stamps input. The median round trip is what
``serve.output_latency_ms`` should be (improv then sends that much early); notes at several
velocities show whether the latency depends on velocity (a per-velocity table). ``--write FILE``
puts the value in a YAML config file (created, or its other settings kept) for ``--config FILE``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from improv.errors import ImprovError

HELP = "measure the output latency through a MIDI loopback and write serve.output_latency_ms"
VELOCITIES = (20, 40, 60, 80, 100, 120)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="PORT", help="the output port the notes go out on (part of its name)")
    parser.add_argument("--in", dest="in_port", required=True, metavar="PORT", help="the input port they come back on")
    parser.add_argument("--api", choices=["alsa", "jack", "coremidi", "winmm"], help="MIDI system (default: serve.api)")
    parser.add_argument("--notes", type=int, default=24, help="round trips to time (default: 24)")
    parser.add_argument("--write", metavar="FILE", help="write serve.output_latency_ms into this YAML config file")


def round_trips(send: Callable[[Any], None], arrivals: Callable[[], Iterable[tuple[float, Any]]], clock: Callable[[], float], sleep: Callable[[float], None], count: int, timeout_s: float = 1.0) -> list[tuple[int, float]]:
    """(velocity, seconds) of each note that came back; sent one at a time, each waited for."""
    import mido

    out = []
    for k in range(count):
        velocity = VELOCITIES[k % len(VELOCITIES)]
        note = 60 + k % 12
        sent = clock()
        send(mido.Message("note_on", note=note, velocity=velocity))
        back = None
        while back is None and clock() - sent < timeout_s:
            for stamp, msg in arrivals():
                if msg.type == "note_on" and msg.note == note and msg.velocity == velocity:
                    back = stamp
            if back is None:
                sleep(0.0005)
        send(mido.Message("note_off", note=note))
        if back is not None:
            out.append((velocity, back - sent))
        sleep(0.05)
        list(arrivals())  # the note-off's echo
    return out


def summary(trips: Sequence[tuple[int, float]]) -> tuple[float, list[list[float]]]:
    """(median round trip in ms, [velocity, extra ms] pairs when the latency varies with velocity
    by more than 3 ms; else empty)."""
    if not trips:
        raise ImprovError("no note came back: is --in the loopback of --out?")
    ms = np.array([s for _, s in trips]) * 1000
    base = float(np.median(ms))
    table = []
    for v in sorted({v for v, _ in trips}):
        table.append([float(v), float(np.median([s * 1000 for w, s in trips if w == v])) - base])
    spread = max(e for _, e in table) - min(e for _, e in table)
    if spread <= 3.0:
        return base, []
    low = min(e for _, e in table)
    return base + low, [[v, round(e - low, 2)] for v, e in table]


def write_setting(path: Path, latency_ms: float, table: list[list[float]]) -> None:
    import yaml

    from improv.io.files import write_atomic

    tree: dict[str, Any] = {}
    if path.exists():
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(tree, dict):
            raise ImprovError(f"{path} is not a YAML mapping of settings")
    serve = tree.setdefault("serve", {})
    serve["output_latency_ms"] = round(latency_ms, 2)
    serve["output_latency_by_velocity"] = table
    write_atomic(path, yaml.safe_dump(tree, sort_keys=False).encode("utf-8"))


def run(args: argparse.Namespace, settings) -> int:
    from improv.io.rtmidi_ports import PortLister, RtInput, match_port, open_output, resolve_api

    if args.notes < 1:
        raise ImprovError(f"--notes must be 1 or more, not {args.notes}")
    api_name = args.api or settings.serve.api
    out = open_output(args.out, api=api_name, client_name="improv-calibrate")
    rt_api = resolve_api(api_name)
    lister = PortLister(rt_api)
    try:
        in_name = match_port(lister.inputs(), args.in_port, "input")
    finally:
        lister.close()
    inp = RtInput(rt_api, "improv-calibrate-in", port=in_name)
    try:
        time.sleep(0.2)  # the connections settle
        trips = round_trips(out.send, inp.iter_stamped, time.perf_counter, time.sleep, args.notes)
    finally:
        out.close()
        inp.close()
    latency, table = summary(trips)
    ms = [s * 1000 for _, s in trips]
    print(f"{len(trips)} of {args.notes} notes came back: round trip median {np.median(ms):.2f} ms, min {min(ms):.2f}, max {max(ms):.2f}")
    print(f"serve.output_latency_ms = {latency:.2f}" + (f"; by velocity {table}" if table else " (the same at every velocity)"))
    if args.write:
        write_setting(Path(args.write), latency, table)
        print(f"written to {args.write} (use it with --config {args.write})")
    return 0
