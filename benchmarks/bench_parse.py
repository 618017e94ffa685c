"""Corpus parsing: files per second on a cold cache, the cached re-run's speed-up, bytes per event.

Both runs go through ``load_corpus`` exactly as ``improv train`` calls it (no round-trip measure),
with a fresh cache folder in a temporary directory, so the user's cache is neither used nor touched.
"""

from __future__ import annotations

import argparse
import tempfile

from improv.corpus.load import load_corpus
from improv.music.tokenizer import Tokenizer
from improv.settings.sections import CorpusSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", default="music21:bach", metavar="PATH", help="corpus to parse (default: music21:bach)")
    parser.add_argument("--parse-workers", type=int, default=0, metavar="N", help="parser processes (0 = one per core)")


def run(args: argparse.Namespace) -> dict[str, float]:
    tokenizer = Tokenizer()
    with tempfile.TemporaryDirectory(prefix="improv-bench-parse-") as cache:
        settings = CorpusSettings(cache_dir=cache, workers=args.parse_workers)
        _, cold = load_corpus([args.corpus], tokenizer, settings, progress=False)
        _, warm = load_corpus([args.corpus], tokenizer, settings, progress=False)
    return {
        "parse_files": cold.files,
        "parse_workers": cold.workers,
        "parse_files_per_s": cold.files / cold.seconds,
        "parse_events_per_s": cold.events / cold.seconds,
        "parse_cached_seconds": warm.seconds,
        "parse_cached_speedup": cold.seconds / warm.seconds,
        "corpus_bytes_per_event": cold.bytes_per_event,
    }
