"""`improv ports`: the MIDI inputs and outputs there are."""

from __future__ import annotations

import argparse

HELP = "list the MIDI input and output ports (names for serve --port/--in/--out)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", choices=["alsa", "jack", "coremidi", "winmm"], help="MIDI system (default: serve.api, else the first that runs here)")


# What to do when no MIDI system runs (a server or container without a sound card, a fresh Linux
# with the ALSA sequencer not loaded): a newcomer's first `improv ports` ends here.
REMEDY = (
    "start one: JACK with `jackd -d dummy &` (no sound card needed; `jackd -d alsa` with one), then --api jack, "
    "or the ALSA sequencer with `sudo modprobe snd-seq`; `improv serve --virtual` then makes ports of its own, "
    "and `improv demo` needs no MIDI system at all"
)


def run(args: argparse.Namespace, settings) -> int:
    from improv.errors import PortError
    from improv.io.rtmidi_ports import list_ports

    try:
        api, inputs, outputs = list_ports(args.api or settings.serve.api)
    except PortError as exc:
        raise PortError(f"{exc}: {REMEDY}") from None
    print(f"MIDI system: {api}")
    print("inputs (serve --in NAME):")
    for name in inputs or ["(none)"]:
        print(f"  {name}")
    print("outputs (serve --out NAME):")
    for name in outputs or ["(none)"]:
        print(f"  {name}")
    return 0
