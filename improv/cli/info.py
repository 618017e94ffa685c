"""`improv info CKPT`: what a checkpoint holds."""

from __future__ import annotations

import argparse
import json

from improv.cli.common import json_ready

HELP = "print what a checkpoint holds (model, tokenizer, training record)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", nargs="?", help="checkpoint file (default: generate.checkpoint)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace, settings) -> int:
    from improv.model.checkpoint import describe, load_checkpoint, model_path

    info = describe(load_checkpoint(model_path(args.checkpoint, settings.generate.checkpoint)))
    if args.json:
        print(json.dumps(json_ready(info), indent=2))
        return 0
    width = max(map(len, info))
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = f"{len(value)} items" if len(value) > 6 else ", ".join(map(str, value))
        print(f"{key:>{width}}: {value}")
    return 0
