"""What the `improv` commands share: argparse types for whole numbers (every ``--seed`` takes
``seed``), ``--voice``/``--checkpoint`` (the two ways a command names its model), and
``json_ready`` for every ``--json``.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from improv.settings.load import MAX_PORT, MAX_SEED


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise argparse.ArgumentTypeError(f"expected a whole number, got {shown!r}") from None


def non_negative(text: str) -> int:
    """argparse type: a whole number >= 0."""
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive(text: str) -> int:
    """argparse type: a whole number >= 1."""
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


# numpy's legacy seeding and the training's generators take seeds below 2**32 (2**70 was a traceback).
def network_port(text: str) -> int:
    """argparse type of ``--monitor PORT``: a TCP port, 0 (any free one) to 65535."""
    value = non_negative(text)
    if value > MAX_PORT:
        raise argparse.ArgumentTypeError(f"must be a port between 0 and {MAX_PORT}, got {value}")
    return value


def seed(text: str) -> int:
    """argparse type of every ``--seed``: a whole number >= 0 (numpy's generators take no negative
    seed: without this check a negative one ends in a traceback, or silently breaks every answer
    of `improv serve`)."""
    value = _whole(text)
    if not 0 <= value <= MAX_SEED:
        shown = str(value) if len(str(value)) <= 24 else f"a number of {len(str(value))} digits"
        raise argparse.ArgumentTypeError(f"a seed must be between 0 and {MAX_SEED} (2**32 - 1), got {shown}")
    return value


def json_ready(value: Any) -> Any:
    """``value`` with every NaN or infinite float (nested in dicts, lists, tuples) turned into None:
    JSON has no NaN or Infinity, so ``json.dumps`` would write text other readers reject."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def add_model_arguments(parser: argparse.ArgumentParser, what: str = "to play") -> None:
    """``--voice`` and ``--checkpoint``: the two ways every command names its model."""
    parser.add_argument("--voice", metavar="NAME", help=f"a shipped voice {what} (`improv voices` lists them; default: voice.default)")
    parser.add_argument("--checkpoint", metavar="FILE", help=f"any model file {what} instead (.pt or .npz)")


def chosen_model(args: argparse.Namespace, settings: Any) -> Any:
    """The model file the command's ``--voice`` / ``--checkpoint`` / ``voice.default`` name."""
    from improv.model.voices import model_location

    return model_location(args.voice, args.checkpoint, settings.voice.default)


def add_monitor_arguments(parser: argparse.ArgumentParser) -> None:
    """``--monitor [PORT]`` and ``--monitor-host``: the live page of `serve` and `demo`."""
    parser.add_argument(
        "--monitor", nargs="?", type=network_port, const=-1, default=None, metavar="PORT",
        help="show the session live on a web page at http://127.0.0.1:PORT/ (default PORT: monitor.port; 0 = any free port)",
    )  # fmt: skip
    parser.add_argument(
        "--monitor-host", metavar="ADDRESS",
        help="serve the page on this address instead of 127.0.0.1 (e.g. 0.0.0.0: every network; the page then needs the access token improv prints)",
    )  # fmt: skip


def monitor_choice(args: argparse.Namespace, settings: Any) -> Any:
    """The ``MonitorChoice`` the flags ask for, or None."""
    if args.monitor is None:
        if args.monitor_host is not None:
            from improv.errors import ImprovError

            raise ImprovError("--monitor-host needs --monitor")
        return None
    from improv.monitor.live import MonitorChoice

    port = settings.monitor.port if args.monitor < 0 else args.monitor
    return MonitorChoice(args.monitor_host or "127.0.0.1", port, settings.monitor.seconds)
