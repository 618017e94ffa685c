"""`improv corpus PATH...`: read MIDI files, folders or music21:NAME and report what the tokens keep."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from improv.cli.common import non_negative

HELP = "read MIDI files, folders or music21:NAME corpora into tokens and report what was found"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "sources",
        nargs="*",
        metavar="PATH",
        help="a MIDI file, a folder (searched recursively), or music21:NAME such as music21:bach "
        "(default: train.data from the config)",
    )
    parser.add_argument("--cache", metavar="DIR", help="cache folder (default: corpus.cache_dir, else ~/.cache/improv/corpus)")
    parser.add_argument("--no-cache", action="store_true", help="parse every file, read and write no cache")
    parser.add_argument("--workers", type=non_negative, metavar="N", help="parser processes (0 = one per core; default: corpus.workers)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")


def run(args: argparse.Namespace, settings: Any) -> int:
    from improv.corpus.load import load_corpus
    from improv.music.tokenizer import Tokenizer

    corpus_settings = settings.corpus
    if args.cache:
        corpus_settings = dataclasses.replace(corpus_settings, cache_dir=args.cache)
    if args.no_cache:
        corpus_settings = dataclasses.replace(corpus_settings, cache=False)
    if args.workers is not None:
        corpus_settings = dataclasses.replace(corpus_settings, workers=args.workers)
    sources = args.sources or list(settings.train.data)
    _, report = load_corpus(sources, Tokenizer(settings.tokenizer), corpus_settings, measure_recall=True)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(summary(report, sources))
    return 0 if report.parsed or not report.files else 1


def summary(report: Any, sources: list[str]) -> str:
    """The human-readable report."""
    lines = [f"corpus {' '.join(sources)}"]
    from_cache = f", {report.cached} from the cache" if report.cache_dir else ", cache off"
    lines.append(f"  files     {report.files}: {report.parsed} parsed, {len(report.skipped)} skipped{from_cache}")
    if report.pieces != report.parsed:
        lines.append(f"  pieces    {report.pieces}")
    lines.append(
        f"  events    {report.events:,} ({report.events_per_file:,.0f} per file, {report.bytes_per_event:.2f} bytes each)"
    )
    if report.roundtrip_recall is not None:
        lines.append(
            f"  recall    {report.roundtrip_recall:.4f} ({report.notes_kept:,} of {report.notes_total:,} notes keep "
            "pitch and grid onset through tokens and MIDI)"
        )
    workers = f" ({report.workers} parser processes)" if report.workers else ""
    lines.append(f"  time      {report.seconds:.2f} s{workers}")
    if report.cache_dir:
        lines.append(f"  cache     {report.cache_dir}")
    for note in report.warnings:
        lines.append(f"  warning   {note}")
    if report.skipped:
        lines.append("skipped:")
        lines.extend(f"  {s.path}: {s.reason}" for s in report.skipped)
    return "\n".join(lines)
