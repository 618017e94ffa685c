"""``improv controls``: every control with its controller number (learned or configured)."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "list the controls with their MIDI bindings (serve --learn NAME binds one)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace, settings: Any) -> int:
    from improv.session.controls_file import controls_path, describe_controls

    for line in describe_controls(settings.serve):
        print(line)
    print(f"(bindings and last values: {controls_path(settings.serve)})")
    return 0
