"""#18's "done when" over JACK: `improv serve --voice folk` with no --bpm, calls played through a
private jackd at 56-184 bpm, the answers stamped by a listener on the same clock.

The calls alternate two phrases (eighths and quarters, as `tests/test_pulse_jack.py` plays; plain
quarters with an accented downbeat), one call per tempo, each after the answer before it has ended
and a 7 s pause. Figures: ``pulse4_jack_tempo_ok`` - the tempo improv reported right, x2 or x1/2
(within 4 %); ``pulse4_jack_grid_median_ms`` / ``_p90_ms`` - answer onsets to the performer's grid
(sixteenths and triplets of their beat; of the doubled beat where the tempo was heard at double),
extrapolated past the call; ``pulse4_jack_first_max_ms`` / ``_first_ok`` - the answer's first note
off the performer's beat: the worst, and the share within 30 ms. Targets (the issue): median
<= 15 ms, p90 <= 35 ms, first note on the beat. Nothing is measured where jackd cannot start.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # support: jackd, serve as a process

TEMPI = [56, 70, 84, 100, 120, 140, 160, 184]
PHRASES = [
    ([0, 0.5, 1, 1.5, 2, 3, 3.5, 4, 5, 6], [60, 62, 64, 65, 67, 65, 64, 62, 64, 60]),  # eighths and quarters
    ([0, 1, 2, 3, 4, 5, 6, 7], [67, 65, 64, 62, 60, 62, 64, 60]),  # plain quarters
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pulse4-pause", type=float, default=7.0, metavar="S", help="pulse4: seconds between an answer's end and the next call (default: 7)")


def grid_ms(t: float, origin: float, beat: float) -> float:
    x = (t - origin) / beat
    f = x - math.floor(x)
    return min(abs(f - g) for g in (0, 0.25, 1 / 3, 0.5, 2 / 3, 0.75, 1)) * beat * 1000


def run(args: argparse.Namespace) -> dict[str, float]:
    import mido
    from support.jack_server import JackServer
    from support.serve_process import send_on_time, served

    jack = JackServer()
    reason = jack.start()
    if reason is not None:
        print(f"# pulse4: no JACK ({reason}); nothing measured", file=sys.stderr)
        return {}
    cmd = [sys.executable, "-m", "improv", "serve", "--api", "jack", "--voice", "folk", "--virtual", "--set", "serve.silence_ms=300"]
    pause = getattr(args, "pulse4_pause", 7.0)
    errors: list[float] = []
    firsts: list[float] = []
    right = 0
    try:
        with served(jack, cmd) as s:
            for number, bpm in enumerate(TEMPI, start=1):
                beats, pitches = PHRASES[number % 2]
                beat = 60 / bpm
                events = []
                for b, p in zip(beats, pitches):
                    events.append((b * beat, mido.Message("note_on", note=p, velocity=100 if b % 4 == 0 else 80 if b % 2 == 0 else 64)))
                    events.append((b * beat + 0.45 * beat, mido.Message("note_off", note=p)))
                origin = time.perf_counter() + 0.05
                end = send_on_time(s.performer, events, origin)
                got = s.listener.wait(lambda g: len(s.listener.note_ons(after=end)) >= 2, timeout=30)
                while got and s.listener.wait(lambda g, n=len(s.listener.note_ons(after=end)): len(s.listener.note_ons(after=end)) > n, timeout=1.5):
                    pass  # until the answer has ended (1.5 s without a new note)
                status = s.lines.wait_for(f"#{number} call", timeout=10)
                found = re.search(r"· (\d+) bpm", status)
                heard = float(found.group(1)) if found else math.nan
                ratio = heard / bpm
                ok = min(abs(ratio / x - 1) for x in (1, 2, 0.5)) < 0.04
                right += ok
                answer = [t for t, _ in s.listener.note_ons(after=end)]
                level = beat / (2 if ratio > 1.5 else 1)
                errs = [grid_ms(t, origin, level) for t in answer]
                errors += errs
                if answer:
                    x = (answer[0] - origin) / beat
                    firsts.append(abs(x - round(x)) * beat * 1000)
                print(f"# pulse4: {bpm} bpm heard {heard:g}, {len(answer)} notes, grid median {np.median(errs) if errs else math.nan:.1f} ms, first {firsts[-1] if answer else math.nan:.1f} ms off the beat", file=sys.stderr)
                s.listener.got.clear()
                time.sleep(pause)
    finally:
        jack.stop()
    return {
        "pulse4_jack_calls": float(len(TEMPI)),
        "pulse4_jack_tempo_ok": right / len(TEMPI),
        "pulse4_jack_grid_median_ms": float(np.median(errors)) if errors else math.nan,
        "pulse4_jack_grid_p90_ms": float(np.percentile(errors, 90)) if errors else math.nan,
        "pulse4_jack_first_max_ms": float(max(firsts)) if firsts else math.nan,
        "pulse4_jack_first_ok": float(np.mean([f <= 30 for f in firsts])) if firsts else math.nan,
    }
