"""Accompaniment (issue 20): held-out Bach chorale sopranos played into an engine in
``serve.mode: accompany`` at 80 bpm in simulated time (``evaluation.accompany``).

``harmony_ratio`` (the share of accompaniment note-time consonant with the melody note sounding)
for improv's harmony accompanist, the chorales' real alto/tenor/bass and the rule baseline (the
key's tonic triad per bar); ``grid_ms`` of the planned onsets against the performer's beat (the
live figure is the JACK test's); ``anticipation_ms``: how long before its beat each note was decided.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--accompany-pieces", type=int, default=12, help="held-out chorales to play (default 12)")


def run(args: argparse.Namespace) -> dict:
    from improv.evaluation.accompany import evaluate_accompaniment
    from improv.model.step_model import random_step_model
    from improv.settings.sections import ServeSettings

    # The accompaniment does not sample the voice: any step model serves the engine here.
    result = evaluate_accompaniment(random_step_model(), ServeSettings(), count=getattr(args, "accompany_pieces", 12))
    return {f"accompany_{k}": v for k, v in result.items()}
