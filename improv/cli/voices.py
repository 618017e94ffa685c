"""`improv voices`: the voices improv ships, what each was trained on, and how good it is."""

from __future__ import annotations

import argparse
import json
from typing import Any

from improv.cli.common import json_ready

HELP = "list the shipped voices (--voice NAME): corpus, texture, size, held-out NLL"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list of objects (name, path, cell, corpus, texture, heldout_nll, ...)")


def run(args: argparse.Namespace, settings: Any) -> int:
    from improv.model.voices import describe_voices

    voices = describe_voices()
    if args.json:
        print(json.dumps(json_ready(voices), indent=2))
        return 0
    if not voices:
        print("no voices are installed (train one: improv train --out mine.pt; play it: --checkpoint mine.pt)")
        return 0
    default = settings.voice.default
    names = [v["name"] + (" (default)" if v["name"] == default else "") for v in voices]
    width = max(len("voice"), *map(len, names)) + 2
    print(f"{'voice':<{width}}{'texture':<14}{'model':<13}{'MB':>5}{'held-out NLL':>14}   corpus")
    for name, v in zip(names, voices):
        nll = f"{v['heldout_nll']:.3f}" if v["heldout_nll"] is not None else "-"
        corpus = ", ".join(c.removeprefix("music21:") for c in v["corpus"][:6]) + (f" and {len(v['corpus']) - 6} more" if len(v["corpus"]) > 6 else "")
        print(f"{name:<{width}}{v['texture']:<14}{(v['cell'] or '') + ' ' + v['size']:<13}{v['megabytes']:>5.1f}{nll:>14}   {corpus}")
    return 0
