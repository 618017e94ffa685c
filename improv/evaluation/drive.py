"""The serve loop in simulated time, for the evaluations that play into a real ``Engine``
(``answers.engine_answer``, ``accompany.play_along``): every scripted message at its time, ``due``
at every deadline, all the think time wanted between turns. Pure: the engine never sees a clock.
(``tests/support/fakes.simulate`` is the tests' variant, with input delay and no-think options.)
"""

from __future__ import annotations

from typing import Any, Sequence

import mido

Timed = tuple[float, mido.Message]
MAX_TURNS = 1_000_000  # far more than any answer or chorale takes


def drive(engine: Any, script: Sequence[Timed], until: float, *, start: float = 0.0, run_to_until: bool = False, shutdown: bool = False) -> list[Timed]:
    """Run ``engine`` from ``start`` through ``script`` (sorted by time) as the serve loop would,
    thinking fully between turns, until nothing is left to do before ``until``. Unless
    ``run_to_until``, it stops sooner: once its first exchange has ended, the script is played and
    nothing sounds (one call, one answer). ``shutdown``: the engine is shut down where the run
    stopped, its last messages included. Returns what it sent, with the scheduled times."""
    out: list[Timed] = []
    now, i, ended = start, 0, False
    for _ in range(MAX_TURNS):
        times = [script[i][0]] if i < len(script) else []
        wake = engine.next_wakeup()
        if wake is not None:
            times.append(max(wake, now))
        if not times or min(times) > until:
            break
        now = max(now, min(times))
        while i < len(script) and script[i][0] <= now:
            engine.on_message(script[i][1], now)
            i += 1
        out += engine.due(now)
        while engine.wants_think(now):
            engine.think(now, 1000)
        out += engine.due(now)
        if run_to_until:
            continue
        ended = ended or bool(engine.take_reports())
        if ended and i == len(script) and not engine.sounding:
            break
    else:  # an engine that keeps asking to wake at once is a bug: say so rather than spin forever
        raise RuntimeError(f"the engine did not settle in {MAX_TURNS} turns")
    if shutdown:
        out += engine.shutdown(now)
    return out
