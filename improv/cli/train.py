"""`improv train`: train (or resume) a model on MIDI files, folders or music21's corpus."""

from __future__ import annotations

import argparse
import json

from improv.cli.common import json_ready, non_negative, positive, seed

HELP = "train a model on MIDI files (default: music21's Bach chorales); resumable, distributed with torchrun"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", metavar="PATH", help="MIDI files, folders, or music21:NAME (default: train.data)")
    parser.add_argument("--out", metavar="FILE", help="best checkpoint (default: train.out); the last one goes beside it as NAME.last.pt")
    parser.add_argument("--resume", action="store_true", help="continue from NAME.last.pt exactly where it stopped")
    parser.add_argument("--epochs", type=positive, metavar="N", help="stop after N epochs (default: train.epochs)")
    parser.add_argument("--max-steps", type=non_negative, metavar="N", help="stop after N optimiser steps (0 = no limit)")
    parser.add_argument("--seed", type=seed, metavar="S", help="seed of the split, augmentation and weights (default: train.seed)")
    parser.add_argument("--device", metavar="D", help="auto, cpu, cuda, cuda:N or mps (default: train.device)")
    parser.add_argument("--json", action="store_true", help="print one JSON summary object at the end")


def run(args: argparse.Namespace, settings) -> int:
    from improv.settings.load import section_from_dict
    from improv.training.run import train

    overrides = {
        "data": args.data,
        "out": args.out,
        "epochs": args.epochs,
        "max_steps": args.max_steps,
        "seed": args.seed,
        "device": args.device,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    # Validate command-line values exactly as the config file's (one-line errors naming the flag's key).
    from dataclasses import asdict

    section_from_dict(type(settings.train), {**asdict(settings.train), **overrides}, "train")
    summary = train(settings, resume=args.resume, overrides=overrides)
    if args.json and summary.get("rank", 0) == 0:  # under torchrun only rank 0 speaks
        print(json.dumps(json_ready(summary), indent=2))
    return 0

