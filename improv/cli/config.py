"""`improv config`: the default configuration, every setting with its comment (a starting point
for your own: `improv config > mine.yaml`, then `--config mine.yaml` or $IMPROV_CONFIG)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "print the default configuration file, every setting commented (improv config > mine.yaml)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace, settings: Any) -> int:
    from importlib.resources import files

    sys.stdout.write((files("improv") / "default_config.yaml").read_text(encoding="utf-8"))
    return 0
