"""improv's benchmarks: one entry point, `python benchmarks/run.py [--json] [--only NAME ...]`.

Each `benchmarks/bench_*.py` module contributes figures. It exposes::

    add_arguments(parser) -> None      its own options (optional)
    run(args) -> dict[str, float]      measures, returns named figures (ratios against a baseline
                                       measured in the same run, not absolute times alone)

Figures are printed as a table (or one JSON object with --json). Nothing here asserts a target:
timing assertions belong here, not in the tests, because the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the bench_* modules
sys.path.insert(0, str(HERE.parent))  # improv itself, when run from a checkout


def bench_modules() -> dict[str, object]:
    return {p.stem[len("bench_"):]: importlib.import_module(p.stem) for p in sorted(HERE.glob("bench_*.py"))}


def main(argv: list[str] | None = None) -> int:
    modules = bench_modules()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--only", nargs="+", choices=sorted(modules), help="run only these groups")
    for name, module in modules.items():
        add = getattr(module, "add_arguments", None)
        if add is not None:
            add(parser.add_argument_group(name))
    args = parser.parse_args(argv)
    figures: dict[str, float] = {}
    for name, module in modules.items():
        if args.only and name not in args.only:
            continue
        started = time.perf_counter()
        print(f"# {name} ...", file=sys.stderr, flush=True)
        result = module.run(args)
        print(f"# {name}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        figures.update(result)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        width = max((len(k) for k in figures), default=0)
        for key, value in figures.items():
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            print(f"{key:<{width}}  {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
