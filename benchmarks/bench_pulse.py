"""In time with the performer: performed calls, answered by the engine in simulated time.

Calls are 2-bar phrases (``evaluation.phrases.cut_pairs``) of music21's corpus (Bach chorales and
Essen folk songs, what the shipped voices learn from; pieces picked by a hash of their names, none
looked at while the tracker was written), played by a scripted performer: a tempo from 40 to 220
bpm, onsets jittered (sd 12-20 ms), bars accented (downbeat +12 velocity, mid-bar +6, sd 6), notes
held 90 % of their length. Sets: ``steady`` (each call at a new tempo after a long pause),
``set`` (six calls at one tempo, no pause), ``swing`` (off-beat eighths at 2:1 and 1.6:1),
``rubato`` (the tempo drifting +-6 % over 16 beats), ``change`` (three calls at one tempo, three at
another 25 % faster). The engine answers with the shipped ``folk`` voice, no ``--bpm`` given
(``serve.bpm`` 100 is the prior), in ``engine.simulate``'s simulated time.

Figures: ``pulse_tempo_ok`` — the share of calls whose tempo is right, or exactly double or half,
within 4 %; ``pulse_tempo_32`` — calls heard at 3:2 or 2:3; ``pulse_tempo_other`` — any other
error; ``pulse_grid_median_ms`` / ``_p90_ms`` — |distance| of each answer onset to the performer's
grid (sixteenths and triplets of their beat, swung where they swing, extrapolated past the call);
``pulse_first_ok`` — answers whose first note is within 30 ms of a beat; ``pulse_bar_entry`` — with
``serve.entry: bar``, answers whose first note is within 30 ms of the performer's downbeat (the
phrase's bar lines: where ``cut_pairs`` puts them); ``pulse_swing_call`` / ``_answer`` — the mean
long-to-short ratio of the off-beat eighths in the swing set, the call's against the answer's.
It runs on any improv (main's too, for the before/after table): settings it lacks are left out.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # support.fakes: the simulated loop

from improv.corpus.load import load_corpus  # noqa: E402
from improv.evaluation.phrases import cut_pairs  # noqa: E402
from improv.model.voices import load_player, voice_path  # noqa: E402
from improv.music.tokenizer import Tokenizer  # noqa: E402
from improv.realtime.engine import Engine  # noqa: E402
from improv.settings.sections import CorpusSettings, ServeSettings  # noqa: E402
from support.fakes import off, on, simulate  # noqa: E402

SOURCES = ["music21:bach", "music21:essenFolksong"]
TEMPI = [40, 56, 70, 84, 100, 120, 140, 160, 184, 200, 220]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pulse-calls", type=int, default=66, metavar="N", help="pulse: calls in the steady set (default: 66)")
    parser.add_argument("--pulse-voice", default="folk", help="pulse: the voice that answers (default: folk)")


def phrases(count: int) -> list[Any]:
    """``count`` calls, alternately from each source: each piece's first 2-bar call."""
    tok = Tokenizer()
    per_source = []
    for source in SOURCES:
        pieces, _ = load_corpus([source], tok, CorpusSettings(), progress=False)
        pieces = sorted(pieces, key=lambda p: zlib.crc32(p.name.encode()))  # a fixed, arbitrary pick
        found = []
        for p in pieces:
            if p.meter in ((4, 4), (3, 4), (2, 4)):
                pairs = cut_pairs(p.name, p.tokens, tok, p.meter, bars=2)
                if pairs:
                    found.append(pairs[0])
            if len(found) >= (count + 1) // 2:
                break
        per_source.append(found)
    out = [x for pair in zip(*per_source) for x in pair]
    return out[:count]


class Performer:
    """Beat position -> seconds for one call: a tempo (drifting with ``rubato``), a swing, an origin."""

    def __init__(self, bpm: float, origin: float, swing: float = 1.0, rubato: float = 0.0) -> None:
        self.bpm, self.origin, self.swing, self.rubato = bpm, origin, swing, rubato

    def beat_s(self, x: float) -> float:
        return 60 / (self.bpm * (1 + self.rubato * math.sin(2 * math.pi * x / 16)))

    def time(self, x: float) -> float:
        xs = np.linspace(0, x, max(2, int(abs(x) * 8) + 2))
        straight = float(np.trapezoid([self.beat_s(v) for v in xs], xs)) if x else 0.0
        k = math.floor(x + 1e-9)
        f = x - k
        s = self.swing / (1 + self.swing)
        swung = f * 2 * s if f <= 0.5 else s + (f - 0.5) * 2 * (1 - s)
        return self.origin + straight + (swung - f) * self.beat_s(x)

    def position(self, t: float) -> float:
        lo, hi = -8.0, 4096.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.time(mid) < t else (lo, mid)
        return (lo + hi) / 2


def perform(pair: Any, who: Performer, rng: np.random.Generator, jitter: float) -> tuple[list, float]:
    """(script, end time) of the call played by ``who``."""
    script = []
    end = who.origin
    for n in pair.call:
        x = float(n["start"])
        t = who.time(x) + rng.normal(0, jitter)
        on_bar = abs(x / pair.bar - round(x / pair.bar)) < 1e-6
        mid = abs((x + pair.bar / 2) / pair.bar - round((x + pair.bar / 2) / pair.bar)) < 1e-6
        vel = int(np.clip(64 + 12 * on_bar + 6 * mid + rng.normal(0, 6), 1, 127))
        length = max(0.9 * (who.time(x + float(n["duration"])) - who.time(x)), 0.06)
        script += [(t, on(int(n["pitch"]), vel)), (t + length, off(int(n["pitch"])))]
        end = max(end, t + length)
    return script, end


def grid_distance(x: float, swing: float) -> float:
    """Beats from position ``x`` (already unswung) to the nearest sixteenth or triplet."""
    f = x - math.floor(x)
    return min(abs(f - g) for g in (0, 0.25, 1 / 3, 0.5, 2 / 3, 0.75, 1))


def unswing(x: float, swing: float) -> float:
    k = math.floor(x + 1e-9)
    f = x - k
    s = swing / (1 + swing)
    return k + (f / (2 * s) if f <= s else 0.5 + (f - s) / (2 * (1 - s)))


def swing_of(positions: list[float]) -> float | None:
    """Long-to-short ratio of lone off-beat eighths among beat positions (swung, not unswung)."""
    fr = []
    for i, x in enumerate(positions):
        k = math.floor(x + 0.1)
        f = x - k
        if 0.4 <= f <= 0.75 and not any(k + 0.12 < y < k + 0.88 for j, y in enumerate(positions) if j != i):
            fr.append(f)
    if len(fr) < 2:
        return None
    f = float(np.median(fr))
    return f / (1 - f)


def run_set(model: Any, calls: list[tuple[Any, Performer]], settings: ServeSettings, rng: np.random.Generator, jitter: float, fresh: bool) -> list[dict]:
    """Play the calls one after another, each once the answer before it has ended: at the next
    bar line of the performer's own grid (traded without a pause), or ``fresh``: 8 s later (a long
    pause, the next tempo heard anew). Per call: true and heard tempo, the answer's onsets in the
    performer's beats."""
    engine = Engine(model, settings, seed=int(rng.integers(1 << 30)))
    results = []
    t = 1.0
    for pair, who in calls:
        who.origin = t
        script, end = perform(pair, who, rng, jitter)
        out = simulate(engine, script, until=end + 60 / who.bpm * pair.span * 2 + 4.0, start=t)
        ons = [tm for tm, m in out if m.type == "note_on" and m.velocity > 0 and tm > end]
        reports = engine.take_reports()
        last = max([end] + [tm for tm, m in out if m.type in ("note_on", "note_off")])
        results.append({
            "bpm": who.bpm * (1 + who.rubato * math.sin(2 * math.pi * pair.span / 16)),
            "heard": reports[-1].bpm if reports else None,
            "positions": [who.position(x) for x in ons], "who": who, "pair": pair,
        })
        if fresh:
            t = last + 8.0
        else:  # the performer comes in again on their next bar line after the answer
            t = who.time(math.ceil(who.position(last + 0.05) / pair.bar) * pair.bar)
    return results


def figures(results: list[dict], prefix: str = "pulse") -> dict[str, float]:
    ok = r32 = other = 0
    grid_ms, first = [], []
    for r in results:
        if r["heard"] is None:
            other += 1
        else:
            ratio = r["heard"] / r["bpm"]
            if any(abs(ratio / x - 1) < 0.04 for x in (1, 2, 0.5)):
                ok += 1
            elif any(abs(ratio / x - 1) < 0.04 for x in (1.5, 2 / 3, 3, 1 / 3)):
                r32 += 1
            else:
                other += 1
        who = r["who"]
        # Heard at double tempo (right, by the tempo figure): the grid is that level's sixteenths
        # and triplets (the performer's 32nds and sextuplets); at half or right, the performer's.
        level = 2.0 if r["heard"] is not None and abs(r["heard"] / r["bpm"] / 2 - 1) < 0.04 else 1.0
        for i, x in enumerate(r["positions"]):
            d = grid_distance(unswing(x, who.swing) * level, who.swing) / level * who.beat_s(x) * 1000
            grid_ms.append(d)
            if i == 0:
                first.append(abs(x - round(x)) * who.beat_s(x) * 1000 <= 30)
    n = max(len(results), 1)
    return {
        f"{prefix}_calls": float(len(results)),
        f"{prefix}_tempo_ok": ok / n,
        f"{prefix}_tempo_32": float(r32),
        f"{prefix}_tempo_other": float(other),
        f"{prefix}_grid_median_ms": float(np.median(grid_ms)) if grid_ms else math.nan,
        f"{prefix}_grid_p90_ms": float(np.percentile(grid_ms, 90)) if grid_ms else math.nan,
        f"{prefix}_first_ok": float(np.mean(first)) if first else math.nan,
    }


def run(args: argparse.Namespace) -> dict[str, float]:
    rng = np.random.default_rng(18)
    count = getattr(args, "pulse_calls", 66)
    model = load_player(voice_path(getattr(args, "pulse_voice", "folk"))).step_model()
    pairs = phrases(count + 30)
    fields = {f.name for f in dataclasses.fields(ServeSettings)}
    base = ServeSettings()
    out: dict[str, float] = {}
    everything: list[dict] = []

    def jitter() -> float:
        return float(rng.uniform(0.012, 0.020))

    # steady: every call its own tempo, a long pause before it (heard anew each time)
    steady = [(p, Performer(TEMPI[i % len(TEMPI)], 0.0)) for i, p in enumerate(pairs[:count])]
    res = []
    for i in range(0, len(steady), 11):
        res += run_set(model, steady[i : i + 11], base, rng, jitter(), fresh=True)
    out.update(figures(res, "pulse_steady"))
    everything += res
    # set: six calls at one tempo, traded without a pause
    res = []
    for j, bpm in enumerate((60, 92, 132, 176)):
        res += run_set(model, [(p, Performer(bpm, 0.0)) for p in pairs[count + 6 * j % 24 : count + 6 * j % 24 + 6]], base, rng, jitter(), fresh=False)
    out.update(figures(res, "pulse_set"))
    everything += res
    # rubato and a tempo change mid-set
    res = run_set(model, [(p, Performer(80, 0.0, rubato=0.06)) for p in pairs[:6]], base, rng, jitter(), fresh=False)
    out.update(figures(res, "pulse_rubato"))
    everything += res
    res = run_set(model, [(p, Performer(96 if k < 3 else 120, 0.0)) for k, p in enumerate(pairs[6:12])], base, rng, jitter(), fresh=False)
    out.update(figures(res, "pulse_change"))
    everything += res
    # swing
    res = []
    for swing in (2.0, 1.6):
        res += run_set(model, [(p, Performer(120, 0.0, swing=swing)) for p in pairs[12:18]], base, rng, jitter(), fresh=False)
    out.update(figures(res, "pulse_swing"))
    everything += res
    calls = [r["who"].swing for r in res]
    answers = [s for r in res if (s := swing_of(r["positions"])) is not None]
    out["pulse_swing_call"] = float(np.mean(calls)) if calls else math.nan
    out["pulse_swing_answer"] = float(np.mean(answers)) if answers else math.nan
    out.update(figures(everything, "pulse"))
    # bar entry
    if "entry" in fields:
        bar = dataclasses.replace(base, entry="bar")
        res = []
        for i in range(0, 33, 11):
            res += run_set(model, steady[i : i + 11], bar, rng, jitter(), fresh=True)
        hits = []
        for r in res:
            if r["positions"]:
                x = r["positions"][0] / r["pair"].bar
                hits.append(abs(x - round(x)) * r["pair"].bar * r["who"].beat_s(r["positions"][0]) * 1000 <= 30)
        out["pulse_bar_entry"] = float(np.mean(hits)) if hits else math.nan
    return out
