"""How much of the answers is in the performer's scale at adapt 0, 0.5 (the default) and 1: the
scripted whole-tone and blues performers (``improv.evaluation.licks``) play 16 licks into an
engine in simulated time, answered by a voice with every default rule on; the share of the notes
of the answers to calls 11-16 in the licks' scale. A figure a musician hears (is it in my scale?)
beside ``bench_learn``'s overlaps. ``python benchmarks/learn_scale_share.py [VOICE]``."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np

from improv.evaluation.learning import play_calls
from improv.evaluation.licks import SCALES, licks
from improv.model.voices import load_player, model_location
from improv.realtime.engine import Engine
from improv.settings.serve_section import ServeSettings

ADAPTS = (0.0, 0.5, 1.0)


def shares(voice: str = "folk", seeds: tuple[int, ...] = (1, 2), calls: int = 16, learn: int = 10) -> dict[str, list[list[float]]]:
    """Per scale, per seed: the share at each of ``ADAPTS``."""
    model = load_player(model_location(None, None, voice)).step_model()
    out: dict[str, list[list[float]]] = {}
    for scale, tones in SCALES.items():
        for seed in seeds:
            row = []
            for adapt in ADAPTS:
                engine = Engine(model, dataclasses.replace(ServeSettings(), adapt=adapt, estimate_tempo=False, bpm=100.0), seed=seed)
                answers, _ = play_calls(engine, licks(calls, scale, seed), 100.0, 1)
                pitches = np.concatenate([a["pitch"] for a in answers[learn:]]).astype(int)
                row.append(round(float(np.isin(pitches % 12, tones).mean()), 2))
            out.setdefault(scale, []).append(row)
    return out


if __name__ == "__main__":
    for scale, rows in shares(*sys.argv[1:2]).items():
        print(scale, "adapt", "/".join(f"{a:g}" for a in ADAPTS), ":", "; ".join(" / ".join(f"{x:.2f}" for x in r) for r in rows))
