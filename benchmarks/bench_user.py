"""The demo in real time vs ``--fast``: does a loop woken late play the same session?

Each voice and seed plays ``improv demo``'s session (``session.demo.play_session``, the shipped
voice's held-out calls) twice in simulated time: on a plain ``FakeClock`` (what ``--fast`` runs),
and on a clock whose every read moves time on by up to ``--late-ms`` with probability
``--late-share`` (a loaded machine: the loop wakes late, thinks late, drains input late), with each
think unit costing ``--think-ms``. Figures: ``user_sessions`` played, ``user_differ`` — sessions
whose improv track (onset in beats, pitch, velocity of every note) differs from ``--fast``'s;
``user_late_dropped`` — notes the late clock dropped as more than ``serve.late_ms`` late (a stall
real time must drop; none expected at these lateness figures). Needs the shipped voices and
music21's corpus (the demo's calls); about 10 s a session pair on one core.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import numpy as np

from improv.io.clock import FakeClock
from improv.model.voices import load_player
from improv.realtime.engine import Engine
from improv.session.demo import play_session
from improv.session.demo_calls import demo_phrases
from improv.settings.load import load_settings

ROOT = Path(__file__).resolve().parent.parent


class LateClock(FakeClock):
    """Simulated time on a loaded machine: a read of the clock sometimes finds it moved on."""

    def __init__(self, share: float, late_s: float, seed: int) -> None:
        super().__init__()
        self.share, self.late_s, self.rng = share, late_s, np.random.default_rng(seed)

    def now(self) -> float:
        if self.rng.random() < self.share:
            self.t += self.rng.random() * self.late_s
        return self.t


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user-voices", default="folk,bach,renaissance")
    parser.add_argument("--user-seeds", type=int, default=5)
    parser.add_argument("--late-ms", type=float, default=3.0)
    parser.add_argument("--late-share", type=float, default=0.3)
    parser.add_argument("--think-ms", type=float, default=1.0)


def session(voice: str, seed: int, clock: FakeClock, think_s: float) -> tuple[list[tuple[float, int, int]], int]:
    settings = load_settings(ROOT / "config.yaml")
    player = load_player(ROOT / "checkpoints" / f"{voice}.npz")
    phrases, _ = demo_phrases(settings.demo, settings.corpus, player.tokenizer, player.info, np.random.default_rng(seed), settings.serve)
    model = player.step_model()
    lines: list[str] = []
    if think_s:  # model work takes time: the clock moves on by think_s a unit done
        think = Engine.think

        def costly(engine: Engine, now: float, units: int = 8) -> int:
            done = think(engine, now, units)
            clock.advance(think_s * done)
            return done

        Engine.think = costly  # type: ignore[method-assign]
    try:
        tracks = play_session(model, phrases, settings.serve, settings.demo, settings.sample, clock, seed, on_status=lines.append)[1]
    finally:
        if think_s:
            Engine.think = think  # type: ignore[method-assign]
    improv = next(t for t in tracks if t.name == "improv")
    dropped = sum(int(m.group(1)) for line in lines if (m := re.search(r"(\d+) late notes? dropped", line)))
    return [(round(n.start, 4), n.pitch, n.velocity) for n in improv.notes], dropped


def run(args: Any) -> dict:
    voices = getattr(args, "user_voices", "folk,bach,renaissance").split(",")
    seeds = range(getattr(args, "user_seeds", 5))
    late_s, share, think_s = getattr(args, "late_ms", 3.0) / 1000, getattr(args, "late_share", 0.3), getattr(args, "think_ms", 1.0) / 1000
    differ, sessions, dropped, which = 0, 0, 0, []
    for voice in voices:
        for seed in seeds:
            fast, _ = session(voice, seed, FakeClock(), 0.0)
            late, lost = session(voice, seed, LateClock(share, late_s, seed + 1), think_s)
            sessions += 1
            dropped += lost
            if late != fast:
                differ += 1
                which.append(f"{voice}:{seed}")
    return {"user_sessions": sessions, "user_differ": differ, "user_differ_which": which, "user_late_dropped": dropped}
