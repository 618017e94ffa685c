"""`improv demo`: a whole call-and-response session without any MIDI hardware.

A built-in performer plays phrases from music21's corpus into the real engine on the real clock
(or simulated time with --fast); improv answers; some calls barge in. The session is written to
a MIDI file (performer and improv on separate tracks) and a summary gives the timing figures.
With --out PORT the same session also plays through a MIDI port, so a synth makes it audible.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from improv.cli.common import add_model_arguments, add_monitor_arguments, chosen_model, monitor_choice, seed

HELP = "hear improv without a keyboard: a built-in performer plays calls, improv answers (writes demo.mid, demo.png, demo.wav)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--calls", type=int, metavar="N", help="calls the performer plays (default: demo.calls)")
    parser.add_argument("--fast", action="store_true", help="simulated time: the whole session at once")
    parser.add_argument("--out", metavar="PORT", help="also play through this MIDI output port (a substring of its name)")
    parser.add_argument("--api", choices=["alsa", "jack", "coremidi", "winmm"], help="MIDI system for --out")
    parser.add_argument("--record", metavar="FILE.mid", help="where the session is written (default: demo.record)")
    parser.add_argument("--seed", type=seed, default=0, help="random seed: which phrases, and improv's answers (default: 0)")
    parser.add_argument("--temperature", type=float, metavar="T", help="sampling temperature (default: sample.temperature)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    add_monitor_arguments(parser)


def run(args: argparse.Namespace, settings) -> int:
    from improv.errors import ImprovError
    from improv.session.demo import run_demo
    from improv.settings.load import section_from_dict
    from improv.settings.sections import DemoSettings, SampleSettings

    demo = settings.demo
    if args.calls is not None:
        demo = section_from_dict(DemoSettings, {**dataclasses.asdict(demo), "calls": args.calls}, "demo")
    sample = settings.sample
    if args.temperature is not None:
        sample = section_from_dict(SampleSettings, {**dataclasses.asdict(sample), "temperature": args.temperature}, "sample")
    if args.fast and args.out:
        raise ImprovError("--out plays through a port in real time; drop --fast to hear it")
    monitor = monitor_choice(args, settings)
    if args.fast and monitor is not None:
        raise ImprovError("--monitor shows the session in real time; drop --fast to watch it")
    result = run_demo(
        settings,
        demo,
        sample,
        checkpoint=str(chosen_model(args, settings)),
        record=args.record or demo.record,
        fast=args.fast,
        out_port=args.out,
        api=args.api or settings.serve.api,
        seed=args.seed,
        quiet=args.json,
        monitor=monitor,
    )
    if args.json:
        print(json.dumps(result, indent=2))
    return 0 if result["answered"] > 0 else 1
