"""`improv plot`: a piano-roll picture of a MIDI file (a session: calls and answers marked)."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "draw a MIDI file as a piano roll (PNG); a session shows calls and answers, each key and tempo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("midi", metavar="FILE.mid", help="the MIDI file to draw (a recorded session, or any other)")
    parser.add_argument("--out", metavar="FILE.png", help="where the picture goes (default: FILE.png beside the MIDI file)")


def run(args: argparse.Namespace, settings: Any) -> int:
    from improv.render.pianoroll import plot_file

    out, content = plot_file(args.midi, args.out)
    parts = ", ".join(f"{p.name} {len(p.notes)}" for p in content.parts) or "no notes"
    print(f"improv: drew {out} ({parts})")
    return 0
