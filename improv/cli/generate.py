"""`improv generate`: a model's music to a MIDI or MusicXML file."""

from __future__ import annotations

import argparse
import secrets

from improv.cli.common import add_model_arguments, chosen_model, seed

HELP = "write a model's music to a MIDI (or MusicXML) file, optionally continuing a prompt"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--out", metavar="FILE", required=True, help="file to write: .mid/.midi, or .musicxml/.xml for sheet music")
    parser.add_argument("--prompt", metavar="FILE.mid", help="MIDI file whose notes prime the model; the output continues it")
    parser.add_argument("--include-prompt", action="store_true", help="also write the prompt (its own track/part) before the continuation")
    parser.add_argument("--length", type=int, metavar="N", help="events to generate (default: generate.length); you get exactly N unless --min-length lets the model end the piece sooner")
    parser.add_argument("--min-length", type=int, metavar="N", help="let the model end the piece after N events (0: whenever it likes); default generate.min_length, -1: the whole --length")
    parser.add_argument("--temperature", type=float, metavar="T", help="softmax temperature > 0 (default: sample.temperature)")
    parser.add_argument("--top-k", type=int, metavar="K", help="keep the K most likely choices, 0 = off (default: sample.top_k)")
    parser.add_argument("--top-p", type=float, metavar="P", help="nucleus sampling in (0, 1], 1 = off (default: sample.top_p)")
    parser.add_argument("--seed", type=seed, metavar="S", help="random seed; the same seed writes the same file (default: a fresh one, printed)")
    parser.add_argument("--bpm", type=float, metavar="B", help="tempo of the file (default: the prompt's, else generate.bpm)")
    parser.add_argument("--program", type=int, metavar="P", help="General MIDI program 0-127 (default: generate.program)")


def run(args: argparse.Namespace, settings) -> int:
    from improv.generation.generate import GenerateOptions, generate_file
    from improv.io.machine import one_blas_thread
    from improv.model.sampling import SamplingParams

    one_blas_thread()  # one model step at a time: BLAS threads only wait for each other
    s = settings.sample
    params = SamplingParams(
        s.temperature if args.temperature is None else args.temperature,
        s.top_k if args.top_k is None else args.top_k,
        s.top_p if args.top_p is None else args.top_p,
    )
    g = settings.generate
    opts = GenerateOptions(
        checkpoint=str(chosen_model(args, settings)),
        out=args.out,
        length=g.length if args.length is None else args.length,
        params=params,
        seed=secrets.randbelow(2**31) if args.seed is None else args.seed,
        bpm=args.bpm,
        default_bpm=g.bpm,
        program=g.program if args.program is None else args.program,
        prompt=args.prompt,
        include_prompt=args.include_prompt,
        max_file_mb=settings.corpus.max_file_mb,
        min_length=g.min_length if args.min_length is None else args.min_length,
    )
    report = generate_file(opts)
    print(report.summary())
    return 0
