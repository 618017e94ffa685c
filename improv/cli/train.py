"""`improv train`: train (or resume, or fine-tune) a model on MIDI files, folders or music21's corpus."""

from __future__ import annotations

import argparse
import json
from typing import Any

from improv.cli.common import json_ready, non_negative, positive, seed

HELP = "train a model on MIDI files (default: music21's Bach chorales); resumable, fine-tunes a voice with --from"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", metavar="PATH", help="MIDI files, folders, or music21:NAME (default: train.data)")
    parser.add_argument("--out", metavar="FILE", help="best checkpoint (default: train.out); NAME.npz (what plays) and NAME.last.pt (to resume) go beside it")
    parser.add_argument("--from", dest="from_model", metavar="VOICE|FILE", help="fine-tune: start from this model's weights (a shipped voice such as base, or a checkpoint) instead of random ones")
    parser.add_argument("--pairs", action="store_true", default=None, help="learn to answer: train on (call, answer) phrase pairs cut as `eval --duet` cuts them, the loss on the answer only (train.pairs; lengths: train.pair_bars)")
    parser.add_argument("--resume", action="store_true", help="continue from NAME.last.pt exactly where it stopped")
    parser.add_argument("--force", action="store_true", help="train a new model even where --out already holds one (it is replaced)")
    parser.add_argument("--epochs", type=positive, metavar="N", help="stop after N epochs (default: train.epochs)")
    parser.add_argument("--max-steps", type=non_negative, metavar="N", help="stop after N optimiser steps (0 = no limit)")
    parser.add_argument("--seed", type=seed, metavar="S", help="seed of the split, augmentation and weights (default: train.seed)")
    parser.add_argument("--device", metavar="D", help="auto, cpu, cuda, cuda:N or mps (default: train.device)")
    parser.add_argument("--json", action="store_true", help="print one JSON summary object at the end")


def run(args: argparse.Namespace, settings: Any) -> int:
    from dataclasses import asdict

    from improv.errors import TORCH_HINT, TrainError
    from improv.settings.load import section_from_dict

    try:
        import torch  # noqa: F401  (imported lazily deeper down: ask here, before any work)

        from improv.training.run import train
    except ImportError as exc:  # torch is an extra: playing never needs it
        raise TrainError(f"training needs torch, which is not installed ({exc.name}): {TORCH_HINT}") from None
    overrides = {
        "data": args.data,
        "out": args.out,
        "epochs": args.epochs,
        "max_steps": args.max_steps,
        "seed": args.seed,
        "device": args.device,
        "pairs": args.pairs,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    # Validate command-line values exactly as the config file's (one-line errors naming the flag's key).
    ts = section_from_dict(type(settings.train), {**asdict(settings.train), **overrides}, "train")
    if args.resume and args.from_model:
        raise TrainError("--resume continues a run as it began; --from starts a new one: give one of them")
    if not args.resume and not args.force:
        refuse_overwrite(ts.out)
    summary = train(
        settings.train, settings.model, settings.tokenizer, settings.corpus,
        resume=args.resume, from_model=args.from_model, overrides=overrides,
    )  # fmt: skip
    if args.json and summary.get("rank", 0) == 0:  # under torchrun only rank 0 speaks
        print(json.dumps(json_ready(summary), indent=2))
    return 0


def refuse_overwrite(out: str) -> None:
    """A model already at ``--out`` (or its resume file) is not silently replaced by a new run."""
    from pathlib import Path

    from improv.errors import TrainError
    from improv.training.artefacts import last_path

    for path in (Path(out), last_path(out)):
        if path.exists():
            raise TrainError(f"{path} already exists: --resume continues its run, --force trains a new model over it (or pick another --out)")
