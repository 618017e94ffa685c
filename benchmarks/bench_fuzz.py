"""Fuzz case counts: the harness of tests/test_fuzz_*.py run at a larger size, counting outcomes
instead of asserting them (`python benchmarks/run.py --only fuzz [--fuzz-cases N]`).

Per target: cases tried, ``tracebacks`` (an exception other than improv's one-line errors),
``hangs`` (a case over ``HANG_S`` seconds of wall time; measured, not stopped), and for the serve
loop the notes improv left sounding. Targets: mutated MIDI files through the corpus worker's
``parse_task`` and as ``generate`` prompts (``read_prompt``), random byte streams into
``MidiParser``, random junk sessions through the serve loop (fake clock, in-memory ports), and
random ``--set`` values for every setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # tests/support: the mutations and junk the fuzz tests use
sys.path.insert(0, str(REPO))

HANG_S = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fuzz-cases", type=int, default=2000, help="cases per target (default 2000; serve sessions: a tenth)")


def run(args) -> dict:
    n = getattr(args, "fuzz_cases", 2000)
    figures: dict = {}
    for name, target, cases in (
        ("midi_files", midi_files, n),
        ("prompts", prompts, n),
        ("parser_streams", parser_streams, n),
        ("serve_sessions", serve_sessions, max(1, n // 10)),
        ("config_values", config_values, n),
    ):
        tried, tracebacks, hangs, hanging = target(cases)
        figures.update({f"fuzz_{name}_cases": tried, f"fuzz_{name}_tracebacks": tracebacks, f"fuzz_{name}_hangs": hangs})
        if hanging is not None:
            figures[f"fuzz_{name}_notes_left_hanging"] = hanging
    return figures


def _count(cases, one) -> tuple[int, int, int]:
    """Run ``one(case)`` for each case: (tried, tracebacks, hangs)."""
    tried = tracebacks = hangs = 0
    for case in cases:
        started = time.monotonic()
        try:
            one(case)
        except Exception as exc:  # noqa: BLE001 - counted: the figure is how many there are
            from improv.errors import ImprovError

            if not isinstance(exc, ImprovError):
                tracebacks += 1
                print(f"# fuzz: {type(exc).__name__}: {str(exc)[:120]}", file=sys.stderr)
        tried += 1
        hangs += time.monotonic() - started > HANG_S
    return tried, tracebacks, hangs


def midi_files(n: int):
    from improv.corpus.pool import Limits, parse_task
    from improv.music.tokenizer import Tokenizer
    from support.midi_mutations import mutations

    tokenizer, limits = Tokenizer(), Limits(30.0, 32_000_000, 0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.mid"

        def one(case):
            path.write_bytes(case[1])
            _, result = parse_task(str(path), "midi", tokenizer, True, limits)
            if result.skip and result.skip.startswith("reader failed"):
                raise RuntimeError(result.skip)  # the worker caught a traceback for us

        return (*_count(mutations(random.Random(1000), n), one), None)


def prompts(n: int):
    from improv.generation.generate import read_prompt
    from support.midi_mutations import mutations

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.mid"

        def one(case):
            path.write_bytes(case[1])
            read_prompt(str(path))

        return (*_count(mutations(random.Random(2000), n), one), None)


def parser_streams(n: int):
    from improv.io.midi_parser import MidiParser
    from support.junk import random_stream

    rng = random.Random(3000)

    def one(_):
        parser = MidiParser()
        data = random_stream(rng, rng.randrange(1, 4096))
        for i in range(0, len(data), 64):
            parser.feed(list(data[i : i + 64]))
            list(parser)

    return (*_count(range(n), one), None)


def serve_sessions(n: int):
    from support.fakes import unclosed
    from support.junk import session

    hanging = 0

    def one(seed):
        nonlocal hanging
        engine, out, lines, loop = session(10_000 + seed, seconds=60.0)
        hanging += sum(unclosed(out.sent).values())
        errors = [line for line in lines if "error" in line]
        if errors:
            raise RuntimeError(errors[0])

    tried, tracebacks, hangs = _count(range(n), one)
    return tried, tracebacks, hangs, hanging


def config_values(n: int):
    from improv.settings.load import load_settings
    from improv.settings.sections import Settings
    from support.junk import CONFIG_VALUES as VALUES

    rng = random.Random(4000)
    keys = [(f.name, k.name) for f in dataclasses.fields(Settings) for k in dataclasses.fields(getattr(Settings(), f.name))]

    def one(_):
        section, key = rng.choice(keys)
        value = rng.choice(VALUES)
        text = value if isinstance(value, str) else repr(value).replace("inf", ".inf").replace("nan", ".nan")
        load_settings(None, [f"{section}.{key}={text}"])

    return (*_count(range(n), one), None)
