"""`improv info [MODEL]`: what a model file holds."""

from __future__ import annotations

import argparse
import json
from typing import Any

from improv.cli.common import add_model_arguments, chosen_model, json_ready

HELP = "print what a model holds (model, tokenizer, training record)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", metavar="FILE", help="a model file (.pt or .npz); default: --voice, else voice.default")
    add_model_arguments(parser, "to describe")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace, settings: Any) -> int:
    if args.model:
        args.checkpoint = args.model
    path = chosen_model(args, settings)
    info = describe_model(path)
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


def describe_model(path: Any) -> dict[str, Any]:
    """The whole training record from the torch checkpoint when torch is there; else what the
    torch-free file says."""
    from dataclasses import asdict

    from improv.model.voices import load_player

    pt = path.with_suffix(".pt")
    try:
        from improv.model.checkpoint import describe, load_checkpoint
    except ImportError:
        pass
    else:
        if pt.is_file():
            return describe(load_checkpoint(pt))
    model = load_player(path)
    return {
        "path": str(path),
        "model": asdict(model.model_settings),
        "tokenizer": asdict(model.tokenizer.settings),
        "vocabulary": dict(zip(("pitch", "offset", "duration", "velocity"), model.tokenizer.sizes)),
        "parameters": int(sum(a.size for a in model.arrays.values())),
        **model.info,
    }
