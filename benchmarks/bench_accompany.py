"""Accompaniment (issue 20): held-out Bach chorale sopranos played into an engine in
``serve.mode: accompany`` at 80 bpm in simulated time (``evaluation.accompany``).

``harmony_ratio`` (the share of accompaniment note-time consonant with the melody note sounding)
for improv's harmony accompanist, the chorales' real alto/tenor/bass and the rule baseline (the
key's tonic triad per bar); ``grid_ms`` of the planned onsets against the performer's beat (the
live figure is the JACK test's); ``anticipation_ms``: how long before its beat each note was decided.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

PERIOD = 64  # frames at 48 kHz: 1.3 ms a period (the JACK test's default is 256: 5.3 ms)
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # tests/support: the JACK session the JACK test runs too


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--accompany-pieces", type=int, default=12, help="held-out chorales to play (default 12)")
    parser.add_argument("--accompany-jack-beats", type=float, default=24.0, help="beats of a held-out soprano played over JACK at 80 bpm (0 = no JACK run; default 24)")


def run(args: argparse.Namespace) -> dict:
    from improv.evaluation.accompany import evaluate_accompaniment
    from improv.model.step_model import random_step_model
    from improv.settings.serve_section import ServeSettings

    # The accompaniment does not sample the voice: any step model serves the engine here.
    result = evaluate_accompaniment(random_step_model(), ServeSettings(), count=getattr(args, "accompany_pieces", 12))
    out = {f"accompany_{k}": v for k, v in result.items()}
    out.update(decision_cost())
    beats = getattr(args, "accompany_jack_beats", 24.0)
    if beats > 0:
        out.update(over_jack(beats))
    return out


def decision_cost() -> dict:
    """The work of one beat's decision inside the engine's ``due`` (the key estimated afresh, as
    after every key down), over 6 held-out sopranos played into a ``Melody``: ms, median, p99, max."""
    import time

    import numpy as np
    from improv.evaluation.accompany import chorales
    from improv.realtime.accompanist import Melody, choose_chord, warm_up

    warm_up()  # as the engine does when it starts
    costs = []
    for _, notes, _, _ in chorales(6, skip=3):
        melody = Melody()
        for a, b, p in notes:
            melody.down(p, a * 0.75)
            melody.up(p, b * 0.75, 0.75)
            start = time.perf_counter()
            choose_chord(melody, None, b * 0.75, 0.75, int(b) % 4)
            costs.append((time.perf_counter() - start) * 1000)
    return {
        "accompany_decide_ms_median": round(float(np.median(costs)), 3),
        "accompany_decide_ms_p99": round(float(np.percentile(costs, 99)), 3),
        "accompany_decide_ms_max": round(float(max(costs)), 3),
    }


def over_jack(beats: float) -> dict:
    """The live figures: `improv serve --mode accompany` as a process on a private jackd, a
    held-out soprano at 80 bpm sent by one client, improv's notes stamped on arrival by another."""
    import numpy as np
    from support.accompany_jack import accompany_over_jack, soprano
    from support.jack_server import JackServer
    from support.serve_process import tiny_checkpoint_file

    from improv.evaluation.accompany import harmony_ratio

    jack = JackServer(period=PERIOD)  # as bench_serve: a short period, so JACK's buffering hides little
    reason = jack.start()
    if reason is not None:
        print(f"# accompany: no JACK ({reason}); the live figures are left out", file=sys.stderr)
        return {}
    try:
        with tempfile.TemporaryDirectory() as folder:
            run = accompany_over_jack(jack, tiny_checkpoint_file(Path(folder)), beats=beats, bpm=80.0)
    finally:
        jack.stop()
    errors = run.grid_errors_ms()
    _, melody, below = soprano(beats)
    return {
        "accompany_jack_period_frames": PERIOD,
        "accompany_jack_notes": len(run.improv),
        "accompany_jack_grid_ms_median": round(float(np.median(errors)), 3),
        "accompany_jack_grid_ms_p90": round(float(np.percentile(errors, 90)), 3),
        "accompany_jack_harmony_ratio": round(harmony_ratio(run.improv, run.melody), 4),
        "accompany_jack_harmony_ratio_real": round(harmony_ratio(below, melody), 4),  # the same bars' alto, tenor, bass
        "accompany_jack_hanging_notes": len(_unclosed(run.got)),
    }


def _unclosed(got: list) -> dict:
    from support.fakes import unclosed

    return unclosed(got)
