"""`improv serve`: call and response with a MIDI keyboard, in real time."""

from __future__ import annotations

import argparse
import dataclasses

HELP = "answer a MIDI keyboard in real time: play a phrase, improv replies (call and response)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    ports = parser.add_argument_group("ports (see `improv ports`)")
    ports.add_argument("--port", metavar="NAME", help="input and output whose names contain NAME (e.g. \"IAC Bus\")")
    ports.add_argument("--in", dest="in_port", metavar="NAME", help="input port (a substring of its name)")
    ports.add_argument("--out", dest="out_port", metavar="NAME", help="output port (a substring of its name)")
    ports.add_argument("--virtual", action="store_true", help="create ports of improv's own: client 'improv', ports 'in' and 'out'")
    ports.add_argument("--api", choices=["alsa", "jack", "coremidi", "winmm"], help="MIDI system (default: the first that runs here)")
    parser.add_argument("--checkpoint", metavar="FILE", help="model to play (default: generate.checkpoint)")
    parser.add_argument("--temperature", type=float, metavar="T", help="sampling temperature (default: sample.temperature; a knob can change it live)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the answers (default: 0)")
    parser.add_argument("--bpm", type=float, help="tempo when no MIDI clock is followed (default: serve.bpm)")
    parser.add_argument("--record", metavar="FILE.mid", help="save the session: performer and improv on separate tracks")


def run(args: argparse.Namespace, settings) -> int:
    from ..config import ServeSettings, section_from_dict

    overrides = {
        key: value
        for key, value in (
            ("port", args.port),
            ("in_port", args.in_port),
            ("out_port", args.out_port),
            ("api", args.api),
            ("bpm", args.bpm),
            ("virtual", True if args.virtual else None),
        )
        if value is not None
    }
    serve_settings = section_from_dict(ServeSettings, {**dataclasses.asdict(settings.serve), **overrides}, "serve")
    sample = settings.sample
    if args.temperature is not None:
        sample = section_from_dict(type(sample), {**dataclasses.asdict(sample), "temperature": args.temperature}, "sample")
    from ..checkpoint import model_path

    return serve_session(serve_settings, sample, str(model_path(args.checkpoint, settings.generate.checkpoint)), args.seed, args.record)


def serve_session(s, sample, checkpoint: str, seed: int, record: str | None) -> int:
    """Open the ports, load the model, serve until Ctrl-C/SIGTERM, then report (and record)."""
    import threading
    import time
    from pathlib import Path

    from ..engine import Engine, Recorder
    from ..errors import ImprovError
    from ..ports import MidiPorts, PortChoice, api_name
    from ..sampling import SamplingParams
    from ..serve_loop import ServeLoop, serve
    from ..clock import RealClock

    path = Path(checkpoint)
    if record and not Path(record).resolve().parent.is_dir():
        raise ImprovError(f"cannot record to {record}: its folder does not exist")

    def status(line: str) -> None:
        print(line, flush=True)

    wake = threading.Event()
    choice = PortChoice(s.api, s.in_port or s.port, s.out_port or s.port, s.virtual, s.client_name)
    ports = MidiPorts(choice, wake)  # before the model: a wrong port name fails fast
    try:
        from ..checkpoint import load_checkpoint

        ckpt = load_checkpoint(path)
        model = ckpt.step_model()
        params = SamplingParams.from_settings(sample)
        recorder = Recorder() if record else None
        engine = Engine(model, s, params, seed=seed, recorder=recorder)
        _warm_up(model, params)
        in_name, out_name = ports.describe()
        untrained = " (untrained)" if ckpt.train.get("untrained") else ""
        status(
            f"improv: listening on {in_name!r}, answering on {out_name!r} ({api_name(ports.api)})"
            f" · model {path}{untrained} · {engine.bpm:g} bpm · Ctrl-C to stop"
        )
        loop = ServeLoop(
            engine,
            ports.input,
            ports.output,
            RealClock(s.spin_ms / 1000),
            ports=None if s.virtual else ports,
            on_status=status,
            wake=wake,
            reconnect_s=s.reconnect_s,
        )
        stats = serve(loop, realtime_priority=s.realtime_priority)
        time.sleep(0.05)  # let the last note-offs leave (JACK sends on its next cycle) before closing
    finally:
        ports.close()
    late = stats.lateness_ms()
    status(
        f"improv: {len(stats.exchanges)} exchanges, {stats.sent} messages sent"
        f" · lateness p50 {late['send_late_p50_ms']:.3f} ms, p99 {late['send_late_p99_ms']:.3f} ms, max {late['send_late_max_ms']:.3f} ms"
    )
    if record and recorder is not None:
        from ..midi_io import midi_bytes

        tracks = recorder.tracks(s.record_bpm)
        Path(record).write_bytes(midi_bytes(tracks, s.record_bpm))
        status(f"improv: recorded {record}: " + ", ".join(f"{t.name} {len(t.notes)} notes" for t in tracks))
    return 0


def _warm_up(model, params) -> None:
    """A few steps and samples before the first note, so no first-call cost lands on a send."""
    import numpy as np

    rng = np.random.default_rng(0)
    state = model.initial_state()
    mask = np.zeros(130, dtype=bool)
    mask[:128] = True
    for _ in range(8):
        row = model.sample_event(state, rng, params, mask)
        state = model.step(state, row)
