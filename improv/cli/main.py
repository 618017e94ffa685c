"""The ``improv`` command line: argparse subcommands, each in its own module of ``improv.cli``.

Each command module is light to import (heavy libraries are imported inside ``run``) and exposes::

    HELP: str                                   one line for `improv --help`
    add_arguments(parser) -> None               its own flags
    run(args, settings) -> int                  parse is done; call ONE function, return exit status

Every subcommand takes ``--config FILE`` and any number of ``--set section.key=value``. A user's
mistake raises ``ImprovError`` and is printed as one line, ``improv: error: ...``, exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from improv import __version__
from improv.errors import TORCH_HINT, ImprovError

# Subcommand -> module in improv.cli, in the order `improv --help` lists them.
COMMANDS: dict[str, str] = {
    "demo": "demo",
    "serve": "serve",
    "ports": "ports",
    "calibrate": "calibrate",
    "voices": "voices",
    "train": "train",
    "generate": "generate",
    "render": "render",
    "plot": "plot",
    "eval": "evaluate",
    "corpus": "corpus",
    "info": "info",
    "config": "config",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="improv",
        description="A real-time MIDI improviser: play a phrase, improv answers.",
    )
    parser.add_argument("--version", action="version", version=f"improv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"improv.cli.{module_name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        common = p.add_argument_group("configuration")
        common.add_argument(
            "--config",
            metavar="FILE",
            default=os.environ.get("IMPROV_CONFIG"),
            help="YAML config file (default: $IMPROV_CONFIG, else built-in defaults = the repo's config.yaml)",
        )
        common.add_argument(
            "--set",
            metavar="SECTION.KEY=VALUE",
            action="append",
            default=[],
            dest="overrides",
            help="override one setting (repeatable), e.g. --set sample.temperature=0.9",
        )
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_module", None) is None:
        parser.print_help()
        return 2
    try:
        from improv.settings.load import load_settings

        settings = load_settings(args.config, args.overrides)
        return int(args._module.run(args, settings) or 0)
    except ImprovError as exc:
        print(f"improv: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("improv: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        # eval, info of a .pt, and the like: torch is an extra, installed for training only.
        print(f"improv: error: improv {args.command} needs torch, which is not installed: {TORCH_HINT}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except OSError as exc:
        # A backstop: commands name their own file errors, but a disk that fills up or a file
        # that vanishes mid-run must still end in one line, not a traceback.
        where = f": {exc.filename}" if exc.filename else ""
        print(f"improv: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
