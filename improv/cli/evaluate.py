"""`improv eval`: held-out likelihood against baselines, and statistics of generated music."""

from __future__ import annotations

import argparse
import json
import sys

from improv.cli.common import add_model_arguments, chosen_model, json_ready, positive, seed

HELP = "measure a model: held-out NLL per head vs Markov/unigram baselines, collapse, copying, MGEval overlaps; --duet: call and response"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, "to evaluate")
    parser.add_argument("--data", nargs="+", metavar="PATH", help="evaluate on these sources instead of the pieces the checkpoint held out")
    parser.add_argument("--samples", type=int, metavar="N", help="generated samples for the statistics (default: eval.samples)")
    parser.add_argument("--seed", type=seed, default=0, metavar="S", help="random seed of the samples (default: 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    duet = parser.add_argument_group("call and response (--duet)")
    duet.add_argument("--duet", action="store_true", help="measure call and response on held-out phrase pairs instead: improv's answers (through the engine, with the serve settings) beside the real ones, the voice unprimed, a Markov continuator and a shuffled control")
    duet.add_argument("--bars", type=positive, default=2, metavar="N", help="bars in a call and in its answer (default: 2)")
    duet.add_argument("--answers", type=positive, default=4, metavar="K", help="generated answers per call and system (default: 4)")
    duet.add_argument("--dump", metavar="DIR", help="write every call with each system's answer to it as a MIDI file in DIR (NNN-SYSTEM-K-PIECE.mid: the call on channel 1, the answer on channel 2)")
    duet.add_argument("--pairs", type=positive, default=100, metavar="N", help="phrase pairs at most, evenly spread over the pieces (default: 100)")


def run(args: argparse.Namespace, settings) -> int:
    from improv.evaluation.run import EvalError, format_table, run_eval
    from improv.io.machine import one_blas_thread

    one_blas_thread()  # the samples are drawn one model step at a time

    def log(message: str) -> None:
        print(f"improv eval: {message}", file=sys.stderr, flush=True)

    from improv.model.voices import training_checkpoint

    checkpoint = str(training_checkpoint(chosen_model(args, settings)))
    if args.duet:
        from improv.evaluation.duet import format_duet_table, run_duet

        result = run_duet(checkpoint, args.data, args.bars, args.answers, args.pairs, args.seed, settings, log, args.dump)
        print(json.dumps(json_ready(result), indent=2) if args.json else format_duet_table(result))
        return 0

    samples = settings.eval.samples if args.samples is None else args.samples
    if samples < 1:
        raise EvalError(f"--samples must be >= 1 (got {samples})")

    result = run_eval(checkpoint, args.data, samples, args.seed, settings, log)
    print(json.dumps(json_ready(result), indent=2) if args.json else format_table(result))
    return 0
