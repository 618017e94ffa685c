"""`improv ports`: the MIDI inputs and outputs there are."""

from __future__ import annotations

import argparse

HELP = "list the MIDI input and output ports (names for serve --port/--in/--out)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", choices=["alsa", "jack", "coremidi", "winmm"], help="MIDI system (default: serve.api, else the first that runs here)")


def run(args: argparse.Namespace, settings) -> int:
    from improv.io.rtmidi_ports import list_ports

    api, inputs, outputs = list_ports(args.api or settings.serve.api)  # no MIDI system: the error says how to get one
    print(f"MIDI system: {api}")
    print("inputs (serve --in NAME):")
    for name in inputs or ["(none)"]:
        print(f"  {name}")
    print("outputs (serve --out NAME):")
    for name in outputs or ["(none)"]:
        print(f"  {name}")
    return 0
