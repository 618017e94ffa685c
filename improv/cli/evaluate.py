"""`improv eval`: held-out likelihood against baselines, and statistics of generated music."""

from __future__ import annotations

import argparse
import json
import sys

from improv.cli.common import add_model_arguments, chosen_model, json_ready, seed

HELP = "measure a model: held-out NLL per head vs Markov/unigram baselines, collapse, copying, MGEval overlaps"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, "to evaluate")
    parser.add_argument("--data", nargs="+", metavar="PATH", help="evaluate on these sources instead of the pieces the checkpoint held out")
    parser.add_argument("--samples", type=int, metavar="N", help="generated samples for the statistics (default: eval.samples)")
    parser.add_argument("--seed", type=seed, default=0, metavar="S", help="random seed of the samples (default: 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args: argparse.Namespace, settings) -> int:
    from improv.evaluation.run import EvalError, format_table, run_eval
    from improv.io.machine import one_blas_thread

    one_blas_thread()  # the samples are drawn one model step at a time

    samples = settings.eval.samples if args.samples is None else args.samples
    if samples < 1:
        raise EvalError(f"--samples must be >= 1 (got {samples})")

    def log(message: str) -> None:
        print(f"improv eval: {message}", file=sys.stderr, flush=True)

    from improv.model.voices import training_checkpoint

    result = run_eval(str(training_checkpoint(chosen_model(args, settings))), args.data, samples, args.seed, settings, log)
    print(json.dumps(json_ready(result), indent=2) if args.json else format_table(result))
    return 0
