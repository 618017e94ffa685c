"""In time with the performer: performed calls, answered by the engine in simulated time.

Calls are 2-bar phrases (``evaluation.phrases.cut_pairs``) of music21's corpus (Bach chorales and
Essen folk songs, what the shipped voices learn from; pieces picked by a hash of their names, none
looked at while the tracker was written), cut at the bar lines the scores have (``score_pickup``),
played by a scripted performer: a tempo from 40 to 220 bpm, onsets jittered (sd 12-20 ms), bars
accented (downbeat +12 velocity, mid-bar +6, sd 6), notes held 90 % of their length. Sets:
``steady`` (each call at a new tempo after a long pause), ``set`` (six calls at one tempo, no
pause), ``swing`` (phrases with off-beat eighths, swung 2:1 and 1.6:1), ``rubato`` (the tempo
drifting +-6 % as a sine of 16 beats inside each call, held where the call ends), ``change``
(three calls at one tempo, three at another 25 % faster). The engine answers with the shipped
``folk`` voice, no ``--bpm`` given (``serve.bpm`` 100 is the prior), in ``simulate``'s time.

Figures: ``pulse_tempo_ok`` - the share of calls whose tempo is right, or exactly double or half,
within 4 %; ``pulse_tempo_32`` - calls heard at 3:2 or 2:3; ``pulse_tempo_other`` - any other
error; ``pulse_grid_median_ms`` / ``_p90_ms`` - |distance| in real time of each answer onset to
the performer's grid (sixteenths and triplets of their beat, swung where they swing, extrapolated
past the call); ``pulse_first_ok`` - answers whose first note is within 30 ms of a beat;
``*_oracle_*`` - the same at the same onsets for an ideal listener of the one call (``oracle_ms``; ``_oracle_tempo_ok``: its tempo within 4 %);
``pulse_first_ok_fresh`` / ``_carried`` - the same for the first call of each performance
(each steady call, the first of a traded set) and for the 2nd+ calls of a traded set (``_oracle_``:
the ideal listener's);
``pulse_bar_entry`` - with ``serve.entry: bar``, answers whose first note is within 30 ms of the
performer's bar line (and by metre); ``pulse_bar_line_chosen`` - within a quarter beat of it (the
right bar line, its timing apart); ``pulse_bar_entry_timing_ok`` / ``_oracle_timing_ok`` - among
those on the right bar line, the share within 30 ms, improv's and the ideal listener's; ``pulse_swing_call`` / ``_answer`` - the mean long-to-short
ratio of the off-beat eighths in the swing set, the call's against the answer's (answers with two
or more lone off-beat eighths). It runs on any improv (for a before/after table, copy this file
and ``pulse_pickups.json`` into the other checkout's ``benchmarks/``). ``--pulse-heldout 100``: the
outside check, on other pieces in another performance."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import sys
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # support.fakes: the simulated loop

from improv.corpus.load import load_corpus  # noqa: E402
from improv.music import metre  # noqa: E402
from improv.evaluation.phrases import cut_pairs  # noqa: E402
from improv.model.voices import load_player, voice_path  # noqa: E402
from improv.music.tokenizer import Tokenizer  # noqa: E402
from improv.realtime.engine import Engine  # noqa: E402
from improv.settings.sections import CorpusSettings  # noqa: E402
from improv.settings.serve_section import ServeSettings  # noqa: E402
from support.fakes import off, on, simulate  # noqa: E402

SOURCES = ["music21:bach", "music21:essenFolksong"]
TEMPI = [40, 56, 70, 84, 100, 120, 140, 160, 184, 200, 220]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pulse-calls", type=int, default=66, metavar="N", help="pulse: calls in the steady set (default: 66)")
    parser.add_argument("--pulse-voice", default="folk", help="pulse: the voice that answers (default: folk)")
    parser.add_argument("--pulse-heldout", type=int, default=0, metavar="N", help="pulse: skip the first N phrases and seed the performer with 18 + N: the held-out check (default: 0)")
    parser.add_argument("--pulse-detail", action="store_true", help="pulse: one line per call on stderr (why a figure misses)")


PICKUPS = Path(__file__).resolve().parent / "pulse_pickups.json"


def score_pickup(name: str, bar: float) -> float | None:
    """Beats from a piece's first note to its first bar line, as its score (music21's measures)
    has them; None where the score does not say. ``cut_pairs`` alone guesses the bar lines from
    the notes (right for 67-77 % of pieces), and the performer accents the bar lines: with a wrong
    guess, accents and music would disagree and the bar-entry figure would score a wrong truth."""
    from music21 import converter, corpus

    path, _, index = name.split(":", 1)[1].partition("#")
    full = str(corpus.getWork(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if index:  # an ABC book's Nth tune, parsed alone (as improv.music.scores reads it)
            numbers = sorted({int(x) for x in re.findall(r"(?m)^X:\s*(\d+)", Path(full).read_text(encoding="utf-8", errors="replace"))})
            score = converter.parse(full, number=numbers[int(index) - 1], forceSource=True)
        else:
            score = converter.parse(full, forceSource=True)
    first = None  # (offset, place in its bar) of the earliest note of any part
    for part in score.parts:
        for m in part.getElementsByClass("Measure"):
            if m.notes:
                n = m.notes[0]
                if first is None or m.offset + n.offset < first[0]:
                    first = (m.offset + n.offset, m.paddingLeft + n.offset)
                break
    return None if first is None else float((bar - first[1]) % bar)


def pickups(names: list[tuple[str, float]]) -> dict[str, float | None]:
    """``score_pickup`` of each (name, bar), kept in ``PICKUPS`` (parsing a chorale takes a second)."""
    known = json.loads(PICKUPS.read_text()) if PICKUPS.exists() else {}
    missing = [(n, b) for n, b in names if n not in known]
    for n, b in missing:
        known[n] = score_pickup(n, b)
    if missing:
        PICKUPS.write_text(json.dumps(dict(sorted(known.items())), indent=0) + "\n")
    return known


def phrases(count: int) -> list[Any]:
    """``count`` calls, alternately from each source: each piece's first 2-bar call, its bar lines
    where the score puts them (pieces whose score does not say are skipped)."""
    tok = Tokenizer()
    per_source = []
    for source in SOURCES:
        pieces, _ = load_corpus([source], tok, CorpusSettings(), progress=False)
        pieces = sorted(pieces, key=lambda p: zlib.crc32(p.name.encode()))  # a fixed, arbitrary pick
        pieces = [p for p in pieces if p.meter in ((4, 4), (3, 4), (2, 4))][: count + 10]
        known = pickups([(p.name, p.beats_per_bar) for p in pieces])
        found = []
        for p in pieces:
            if known.get(p.name) is not None:
                pairs = cut_pairs(p.name, p.tokens, tok, p.meter, bars=2, pickup=known[p.name])
                if pairs:
                    found.append(pairs[0])
            if len(found) >= (count + 1) // 2:
                break
        per_source.append(found)
    out = [x for pair in zip(*per_source) for x in pair]
    return out[:count]


class Performer:
    """One call's performer: beat position -> seconds. A tempo (with ``rubato``, drifting as a
    sine of 16 beats from ``phase``, during the call only: past its ``span`` the tempo stays where
    the call left it, the only grid a listener could extrapolate), a swing (the off-beat eighth
    ``swing / (1 + swing)`` through its beat, sixteenths with it; triplets are not swung), an origin."""

    def __init__(self, bpm: float, origin: float, swing: float = 1.0, rubato: float = 0.0, phase: float = 0.0) -> None:
        self.bpm, self.origin, self.swing, self.rubato, self.phase = bpm, origin, swing, rubato, phase
        self.span = math.inf  # set by ``perform``: the call's length in beats

    def tempo(self, x: float) -> float:
        return self.bpm * (1 + self.rubato * math.sin(2 * math.pi * min(x, self.span) / 16 + self.phase))

    def beat_s(self, x: float) -> float:
        return 60 / self.tempo(x)

    def beat_time(self, k: float) -> float:
        """When beat ``k`` (a whole or straight position) falls, unswung."""
        if not self.rubato:
            return self.origin + k * 60 / self.bpm
        xs = np.linspace(0, k, max(2, int(abs(k) * 8) + 2))
        return self.origin + float(np.trapezoid([self.beat_s(v) for v in xs], xs))

    def time(self, x: float) -> float:
        """When the note at beat position ``x`` (as written) is played."""
        k = math.floor(x + 1e-9)
        return self.beat_time(k) + swung(x - k, self.swing) * (self.beat_time(k + 1) - self.beat_time(k))

    def where(self, t: float) -> tuple[int, float, float]:
        """(beat k, fraction of beat k's real time elapsed at ``t``, beat k's length in seconds)."""
        lo, hi = -8.0, 4096.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.beat_time(mid) < t else (lo, mid)
        k = math.floor((lo + hi) / 2)
        start, length = self.beat_time(k), self.beat_time(k + 1) - self.beat_time(k)
        return k, (t - start) / length, length


def swung(f: float, swing: float) -> float:
    """A fraction of the beat as written -> as played: the half beat at ``swing / (1 + swing)``,
    each half's sixteenths with it; triplets (1/3, 2/3) stay."""
    if min(abs(f - 1 / 3), abs(f - 2 / 3)) < 1e-6 or swing == 1.0:
        return f
    s = swing / (1 + swing)
    return f * 2 * s if f <= 0.5 else s + (f - 0.5) * 2 * (1 - s)


def perform(pair: Any, who: Performer, rng: np.random.Generator, jitter: float) -> tuple[list, float]:
    """(script, end time) of the call played by ``who``: bars accented (downbeat +12 velocity,
    mid-bar +6, sd 6), notes held 90 % of their length."""
    who.span = pair.span
    who.played = []
    script = []
    end = who.origin
    for n in pair.call:
        x = float(n["start"])
        t = who.time(x) + rng.normal(0, jitter)
        who.played.append((math.floor(x + 1e-9) + swung(x - math.floor(x + 1e-9), who.swing), t))
        on_bar = abs(x / pair.bar - round(x / pair.bar)) < 1e-6
        mid = abs((x + pair.bar / 2) / pair.bar - round((x + pair.bar / 2) / pair.bar)) < 1e-6
        vel = int(np.clip(64 + 12 * on_bar + 6 * mid + rng.normal(0, 6), 1, 127))
        length = max(0.9 * (who.time(x + float(n["duration"])) - who.time(x)), 0.06)
        script += [(t, on(int(n["pitch"]), vel)), (t + length, off(int(n["pitch"])))]
        end = max(end, t + length)
    return script, end


def grid_ms(who: Performer, t: float, level: float = 1.0) -> float:
    """Milliseconds from ``t`` to the performer's nearest sixteenth or triplet, as they play them
    (swung), in real time; ``level`` 2: that of the double tempo (their 32nds and sextuplets)."""
    k, f, length = who.where(t)
    sub = level * f
    j = math.floor(sub)
    within = sub - j
    grid = [swung(g, who.swing) for g in (0.0, 0.25, 0.5, 0.75, 1.0)] + [1 / 3, 2 / 3]
    if level != 1.0:  # at the double tempo's level its beats are straight halves of the performer's
        grid = [0.0, 0.25, 0.5, 0.75, 1.0, 1 / 3, 2 / 3]
    return min(abs(within - g) for g in grid) / level * length * 1000


def oracle_ms(who: Performer, t: float, level: float = 1.0, beat_only: bool = False) -> float:
    """The outside check: how far an ideal listener's grid would put the grid point nearest ``t``.
    The ideal listener knows where every note of the call is written and draws the least-squares
    line through the onsets at those positions (as played: swung); its error is the call's jitter
    extrapolated, which no tracker hearing this one call can beat. Milliseconds from that line's
    time for the point to the performer's."""
    x, times = np.array(who.played).T
    slope, icpt = np.polyfit(x, times, 1)
    k, f, length = who.where(t)
    base = (0.0, 0.25, 1 / 3, 0.5, 2 / 3, 0.75, 1.0)
    if beat_only:
        grid = [0.0, 1.0]
    elif level == 1.0:
        grid = [swung(g, who.swing) for g in base]
    else:  # as ``grid_ms``: the double tempo's straight sixteenths and triplets
        grid = [(j + g) / level for j in range(int(level)) for g in base]
    g = min(grid, key=lambda v: abs(v - f))
    return abs(icpt + slope * (k + g) - (who.beat_time(k) + g * length)) * 1000


def beat_ms(who: Performer, t: float, every: float = 1.0) -> float:
    """Milliseconds from ``t`` to the performer's nearest beat (``every`` > 1: their bar lines,
    every that many beats from the call's first bar line)."""
    k, f, length = who.where(t)
    x = (k + f) / every
    return abs(x - round(x)) * every * length * 1000


def lone_offbeats(positions: list[float]) -> list[float]:
    """Fractions of the off-beat eighths among beat positions: between 0.4 and 0.75 of a beat,
    with nothing else between the beat and the next."""
    fr = []
    for i, x in enumerate(positions):
        k = math.floor(x + 0.1)
        f = x - k
        if 0.4 <= f <= 0.75 and not any(k + 0.12 < y < k + 0.88 for j, y in enumerate(positions) if j != i):
            fr.append(f)
    return fr


def swing_of(positions: list[float]) -> float | None:
    """Long-to-short ratio of lone off-beat eighths among positions as played (beat + real fraction)."""
    fr = lone_offbeats(positions)
    if len(fr) < 2:
        return None
    f = float(np.median(fr))
    return f / (1 - f)


def run_set(model: Any, calls: list[tuple[Any, Performer]], settings: ServeSettings, rng: np.random.Generator, jitter: float, fresh: bool) -> list[dict]:
    """Play the calls one after another, each once the answer before it has ended: at the next
    bar line of the performer's own grid (traded without a pause), or ``fresh``: 8 s later (a long
    pause, the next tempo heard anew). Per call: true and heard tempo, the answer's onset times."""
    engine = Engine(model, settings, seed=int(rng.integers(1 << 30)))
    results = []
    t = 1.0
    for index, (pair, who) in enumerate(calls):
        who.origin = t
        script, end = perform(pair, who, rng, jitter)
        out = simulate(engine, script, until=end + 60 / who.bpm * pair.span * 2 + 4.0, start=t)
        ons = [tm for tm, m in out if m.type == "note_on" and m.velocity > 0 and tm > end]
        reports = engine.take_reports()
        last = max([end] + [tm for tm, m in out if m.type in ("note_on", "note_off")])
        heard = getattr(getattr(engine, "_planner", None), "tempo", None)
        clear = getattr(getattr(heard, "last", None), "bar_clear", None)  # how clearly the bar was heard (None: an older improv)
        results.append({"bpm": who.tempo(pair.span), "heard": reports[-1].bpm if reports else None, "onsets": ons, "who": who, "pair": pair, "bar_clear": clear, "carried": not fresh and index > 0})
        if fresh:
            t = last + 8.0
        else:  # the performer comes in again on their next bar line after the answer
            k, f, _ = who.where(last + 0.05)
            t = who.beat_time(math.ceil((k + f) / pair.bar) * pair.bar)
    return results


def level_of(r: dict) -> float:
    """2 where the tempo was heard at double the performer's (right, by the tempo figure), else 1."""
    return 2.0 if r["heard"] is not None and abs(r["heard"] / r["bpm"] / 2 - 1) < 0.04 else 1.0


def figures(results: list[dict], prefix: str = "pulse") -> dict[str, float]:
    ok = r32 = other = 0
    grid, first, oracle, oracle_first, oracle_tempo = [], [], [], [], []
    for r in results:
        # the ideal listener's tempo: the least-squares line through the call's onsets at their
        # written places (``oracle_ms``): how well one call's jittered onsets can tell it at all
        x, times = np.array(r["who"].played).T
        oracle_tempo.append(len(x) > 1 and np.ptp(x) > 0 and abs(60 / np.polyfit(x, times, 1)[0] / r["bpm"] - 1) < 0.04)
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
        # Heard at double tempo (right, by the tempo figure): the grid is that level's sixteenths
        # and triplets (the performer's 32nds and sextuplets); at half or right, the performer's.
        grid += [grid_ms(r["who"], t, level_of(r)) for t in r["onsets"]]
        oracle += [oracle_ms(r["who"], t, level_of(r)) for t in r["onsets"]]
        if r["onsets"]:
            first.append(beat_ms(r["who"], r["onsets"][0]) <= 30)
            oracle_first.append(oracle_ms(r["who"], r["onsets"][0], beat_only=True) <= 30)
    n = max(len(results), 1)
    return {
        f"{prefix}_calls": float(len(results)),
        f"{prefix}_tempo_ok": ok / n,
        f"{prefix}_tempo_32": float(r32),
        f"{prefix}_tempo_other": float(other),
        f"{prefix}_grid_median_ms": float(np.median(grid)) if grid else math.nan,
        f"{prefix}_grid_p90_ms": float(np.percentile(grid, 90)) if grid else math.nan,
        f"{prefix}_first_ok": float(np.mean(first)) if first else math.nan,
        # the same apart: the first call of each performance (a new tempo, one call to hear it
        # from) and the 2nd+ calls traded without a pause (the set's grid can carry)
        **{f"{prefix}_{who}first_ok_{name}": float(np.mean(share)) if share else math.nan for (who, name), share in split_first(results).items()},
        # the same at the same answer onsets for the ideal listener (``oracle_ms``): the ceiling
        f"{prefix}_oracle_grid_median_ms": float(np.median(oracle)) if oracle else math.nan,
        f"{prefix}_oracle_grid_p90_ms": float(np.percentile(oracle, 90)) if oracle else math.nan,
        f"{prefix}_oracle_first_ok": float(np.mean(oracle_first)) if oracle_first else math.nan,
        f"{prefix}_oracle_tempo_ok": float(np.mean(oracle_tempo)) if oracle_tempo else math.nan,
    }


def split_first(results: list[dict]) -> dict[tuple[str, str], list[bool]]:
    """Answers whose first note is within 30 ms of a beat (improv's: ``""``, the ideal listener's:
    ``"oracle_"``), for ``fresh`` calls (the first of a traded set, and each steady call after its
    long pause) and ``carried`` ones (the 2nd+ of a traded set)."""
    out: dict[tuple[str, str], list[bool]] = {(w, n): [] for w in ("", "oracle_") for n in ("fresh", "carried")}
    for r in results:
        if r["onsets"]:
            name = "carried" if r["carried"] else "fresh"
            out["", name].append(beat_ms(r["who"], r["onsets"][0]) <= 30)
            out["oracle_", name].append(oracle_ms(r["who"], r["onsets"][0], beat_only=True) <= 30)
    return out


def detail(results: list[dict], kind: str) -> None:
    """One line per call on stderr (``--pulse-detail``): why a figure misses."""
    for r in results:
        who, pair = r["who"], r["pair"]
        errs = [grid_ms(who, t, level_of(r)) for t in r["onsets"]]
        first = beat_ms(who, r["onsets"][0]) if r["onsets"] else math.nan
        bar = beat_ms(who, r["onsets"][0], pair.bar) if r["onsets"] else math.nan
        heard = "-" if r["heard"] is None else f"{r['heard']:.1f}"
        print(f"note: {kind:7s} {pair.piece.split(':')[-1][-26:]:26s} {pair.bar:g}/4 {r['bpm']:6.1f} bpm heard {heard:>6s}"
              f" | {len(errs):2d} notes, grid median {np.median(errs) if errs else math.nan:5.1f} max {max(errs, default=math.nan):5.1f} ms"
              f" | first {first:5.1f} ms off a beat, {bar:6.1f} off a bar line", file=sys.stderr)


def run(args: argparse.Namespace) -> dict[str, float]:
    skip = getattr(args, "pulse_heldout", 0)
    rng = np.random.default_rng(18 + skip)
    count = getattr(args, "pulse_calls", 66)
    show = getattr(args, "pulse_detail", False)
    model = load_player(voice_path(getattr(args, "pulse_voice", "folk"))).step_model()
    pairs = phrases(skip + count + 30)[skip:]
    fields = {f.name for f in dataclasses.fields(ServeSettings)}
    base = ServeSettings()
    out: dict[str, float] = {}
    everything: list[dict] = []

    def jitter() -> float:
        return float(rng.uniform(0.012, 0.020))

    def kind(name: str, res: list[dict]) -> None:
        out.update(figures(res, f"pulse_{name}"))
        everything.extend(res)
        if show:
            detail(res, name)

    # steady: every call its own tempo, a long pause before it (heard anew each time)
    steady = [(p, Performer(TEMPI[i % len(TEMPI)], 0.0)) for i, p in enumerate(pairs[:count])]
    res = []
    for i in range(0, len(steady), 11):
        res += run_set(model, steady[i : i + 11], base, rng, jitter(), fresh=True)
    kind("steady", res)
    # set: six calls at one tempo, traded without a pause
    res = []
    for j, bpm in enumerate((60, 92, 132, 176)):
        res += run_set(model, [(p, Performer(bpm, 0.0)) for p in pairs[count + 6 * j % 24 : count + 6 * j % 24 + 6]], base, rng, jitter(), fresh=False)
    kind("set", res)
    # rubato inside each call (its sine starting at another phase each time), and a tempo change mid-set
    kind("rubato", run_set(model, [(p, Performer(80, 0.0, rubato=0.06, phase=k * math.pi / 3)) for k, p in enumerate(pairs[:6])], base, rng, jitter(), fresh=False))
    kind("change", run_set(model, [(p, Performer(96 if k < 3 else 120, 0.0)) for k, p in enumerate(pairs[6:12])], base, rng, jitter(), fresh=False))
    # swing: phrases with off-beat eighths to swing (three or more alone in their beat), at 2:1 and 1.6:1
    swingable = [p for p in pairs[12:] if len(lone_offbeats([float(x) for x in p.call["start"]])) >= 3][:6]
    res = []
    for swing in (2.0, 1.6):
        res += run_set(model, [(p, Performer(120, 0.0, swing=swing)) for p in swingable], base, rng, jitter(), fresh=False)
    kind("swing", res)
    # The feel as played: the call's off-beat eighths (as the performer swung them) against the answer's.
    calls = [r["who"].swing for r in res]
    answers = [s for r in res if (s := swing_of([k + f for k, f, _ in map(r["who"].where, r["onsets"])])) is not None]
    out["pulse_swing_call"] = float(np.mean(calls)) if calls else math.nan
    out["pulse_swing_answer"] = float(np.mean(answers)) if answers else math.nan
    out["pulse_swing_answers_with_offbeats"] = float(len(answers))
    out.update(figures(everything, "pulse"))
    # bar entry: the first 33 steady calls again, with entry: bar
    if "entry" in fields:
        bar = dataclasses.replace(base, entry="bar")
        res = []
        for i in range(0, 33, 11):
            res += run_set(model, steady[i : i + 11], bar, rng, jitter(), fresh=True)
        if show:
            detail(res, "bar")
        hits = [beat_ms(r["who"], r["onsets"][0], r["pair"].bar) <= 30 for r in res if r["onsets"]]
        out["pulse_bar_entry"] = float(np.mean(hits)) if hits else math.nan
        # the bar line chosen, timing apart (a fresh call's grid a bar on is tens of ms off)
        chosen = [beat_ms(r["who"], r["onsets"][0], r["pair"].bar) <= 250 * r["who"].beat_s(r["pair"].span) for r in res if r["onsets"]]
        out["pulse_bar_line_chosen"] = float(np.mean(chosen)) if chosen else math.nan
        # The two parts of a bar entry apart: among the answers on the right bar line, the share
        # within 30 ms, and the same for the ideal listener of the one call at the same entries (its
        # line extrapolated to that bar line: the timing one fresh call allows)
        right = [r for r in res if r["onsets"] and beat_ms(r["who"], r["onsets"][0], r["pair"].bar) <= 250 * r["who"].beat_s(r["pair"].span)]
        out["pulse_bar_entry_timing_ok"] = float(np.mean([beat_ms(r["who"], r["onsets"][0], r["pair"].bar) <= 30 for r in right])) if right else math.nan
        out["pulse_bar_entry_oracle_timing_ok"] = float(np.mean([oracle_ms(r["who"], r["onsets"][0], beat_only=True) <= 30 for r in right])) if right else math.nan
        # where the metre is clear (``music.metre.BAR_CLEAR``): the share of calls, and the figures among them
        clear = [r for r in res if r["onsets"] and r["bar_clear"] is not None and r["bar_clear"] > getattr(metre, "BAR_CLEAR", math.inf)]
        out["pulse_bar_clear_share"] = len(clear) / max(len([r for r in res if r["onsets"]]), 1)
        out["pulse_bar_entry_clear"] = float(np.mean([beat_ms(r["who"], r["onsets"][0], r["pair"].bar) <= 30 for r in clear])) if clear else math.nan
        out["pulse_bar_line_chosen_clear"] = float(np.mean([beat_ms(r["who"], r["onsets"][0], r["pair"].bar) <= 250 * r["who"].beat_s(r["pair"].span) for r in clear])) if clear else math.nan
        for beats in (2, 3, 4):  # by metre: 2/4, 3/4, 4/4
            some = [beat_ms(r["who"], r["onsets"][0], r["pair"].bar) <= 30 for r in res if r["onsets"] and r["pair"].bar == beats]
            out[f"pulse_bar_entry_{beats}4"] = float(np.mean(some)) if some else math.nan
    return out
