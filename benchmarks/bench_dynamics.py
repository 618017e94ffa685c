"""The answer's dynamics against the call's, with a shipped voice through the engine (simulated
time, ``evaluation.answers.engine_answer``, default serve settings): the corpora carry no
dynamics, so these calls are made here. One 12-note call (eighths, then quarters) played at five
levels (30 .. 110, each note off its level by a fixed pattern of up to 8 steps), three answers a
level; then as a crescendo (30 -> 127) and a diminuendo (127 -> 30).

Figures: ``dynamics_level_corr`` — the correlation of the answers' mean velocity with the calls'
(target >= 0.8); ``dynamics_sd_ratio_min`` / ``_max`` — the answers' velocity sd over their call's
(target 0.5 .. 2); ``dynamics_sd_in_range`` — the share of answers within it;
``dynamics_crescendo_slope`` / ``dynamics_diminuendo_slope`` — the least-squares rise of the
answer's velocities over its notes (per answer, mean of three): a crescendo should get a rising or
matched answer, a diminuendo a falling one; ``..._start`` the answer's first velocity.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

PITCHES = [67, 69, 71, 72, 74, 72, 71, 69, 67, 71, 74, 79]
BEATS = [0.5] * 8 + [1.0] * 4
PATTERN = np.array([0, 6, -4, 8, -6, 4, -2, 6, -3, 5, -5, 2])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dynamics-voice", default="folk", help="the shipped voice the dynamics group answers with (default: folk)")
    parser.add_argument("--dynamics-set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="a setting for the answers (repeatable; default: the built-in defaults)")


def run(args: Any) -> dict[str, float]:
    from improv.evaluation.answers import engine_answer
    from improv.model.checkpoint import load_checkpoint
    from improv.model.sampling import SamplingParams
    from improv.model.voices import training_checkpoint, voice_path
    from improv.music.notes import Note, note_array
    from improv.settings.load import load_settings

    settings = load_settings(None, list(args.dynamics_set))
    serve, params = settings.serve, SamplingParams.from_settings(settings.sample)
    model = load_checkpoint(str(training_checkpoint(voice_path(args.dynamics_voice)))).step_model()

    def call(velocities: Any) -> np.ndarray:
        starts = np.concatenate([[0.0], np.cumsum(BEATS)[:-1]])
        return note_array([Note(p, float(t), d * 0.9, int(v)) for p, t, d, v in zip(PITCHES, starts, BEATS, velocities)])

    def answer(velocities: Any, seed: int) -> np.ndarray:
        notes = engine_answer(model, serve, params, call(velocities), 8.0, 100.0, seed, args.dynamics_voice).notes  # the voice by name: its own rules, as serve plays it
        return notes["velocity"][np.argsort(notes["start"], kind="stable")].astype(float)

    levels, ratios = [], []
    for level in (30, 50, 70, 90, 110):
        played = level + PATTERN
        for seed in range(3):
            v = answer(played, seed)
            levels.append((played.mean(), v.mean()))
            ratios.append(v.std() / played.std())
    out = {
        "dynamics_level_corr": float(np.corrcoef(np.array(levels).T)[0, 1]),
        "dynamics_sd_ratio_min": float(min(ratios)),
        "dynamics_sd_ratio_max": float(max(ratios)),
        "dynamics_sd_in_range": float(np.mean([0.5 <= r <= 2 for r in ratios])),
    }
    for name, played in (("crescendo", np.linspace(30, 127, 12)), ("diminuendo", np.linspace(127, 30, 12))):
        answers = [answer(played, seed) for seed in range(3)]
        out[f"dynamics_{name}_slope"] = float(np.mean([np.polyfit(np.linspace(0, 1, len(v)), v, 1)[0] for v in answers if len(v) > 1]))
        out[f"dynamics_{name}_start"] = float(np.mean([v[0] for v in answers]))
    return out
