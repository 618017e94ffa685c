"""It learns you during the set: a performer with an idiom the voices never trained on plays calls
into a real engine in simulated time (``improv.evaluation.learning``), at ``serve.adapt`` 1 and 0.

Every figure is the mean of one session per ``--learn-seeds`` (three: eight answers make a noisy
histogram overlap; one seed's uptake moved by 0.1 to 0.2 from seed to seed). Idioms: whole-tone and blues licks (``improv.evaluation.licks``: the documented script), and the
top lines of the Final Fantasy piano pieces in ``../shared/corpora/final-fantasy-piano`` (skipped,
with a note, where that folder is absent). After calls 5, 10 and 20 (``N``):

* ``nll_drop_N``: NLL per event (four fields, nats) of the performer's next three unseen phrases,
  the voice alone minus the voice with the session memory after N calls (adapt 1); ``nll_voice_N``
  the voice alone, for scale; ``nll_drop_10_<field>`` per field.
* ``uptake_pc_N`` / ``uptake_pc_count_N`` / ``uptake_interval_N``: MGEval overlap of improv's
  answers to the next eight calls with the performer's phrases, adapt 1 minus adapt 0; pitch-class
  histograms by duration (MGEval's) and by note count, interval histograms. ``_min``: the worst
  session's.
* ``reach_<feature>_N``, what is there to reach: the same overlap of the performer's own next eight
  phrases (played after the session's, never answered) minus adapt 0's. An answer can hardly sit
  closer among the performer's phrases than those do: where ``reach`` is under 0.1, so is any
  honest uptake.
* ``mg_pc_*`` / ``mg_iv_*``: MGEval as its authors' code computes it (``improv.evaluation.mgeval``),
  on its pitch-class histogram (the piano roll: duration x velocity) and on interval histograms.
  Three sets of eight, each against the performer's phrases so far: the answers at adapt 0
  (``_a0_N``), at adapt 1 (``_a1_N``), the performer's own next phrases (``_own_N``). ``oa_ref``
  the overlap area of the performer's intra-set distances with the inter-set ones, ``oa_gen`` of
  the set's own intra-set distances with them, ``kl_*`` MGEval's KL, ``intra_*`` / ``inter`` the
  mean distances; ``mg_*_oa_*_uptake_N`` = a1 - a0 and ``_reach_N`` = own - a0, per session.
* ``held_<pc|iv>_<a0|a1|own>_N`` (``--learn-held``, 24): the same MGEval ``oa_ref`` on sets of 24:
  the answers of the memory as N calls left it (held: it learns no more while it answers the next
  24 calls), adapt 0's to the same calls, the performer's own next 24 phrases; ``held_*_uptake_N``
  = a1 - a0 and ``_reach_N`` = own - a0, per session. Why beside ``mg_*``: eight answers make a
  KDE so noisy that the performer's own next phrases reach only 0.87-0.94, and the window's memory
  goes on learning for eight calls, so "after 5" was not quite after 5. ``held_scale_*`` (licks):
  the share of a set's notes in the licks' scale, weighed by duration x velocity (MGEval's
  histogram's weights); ``held_outside_*`` the share of notes outside the performer's range so far
  (``_outside``); ``held_collapse_a1`` / ``held_longest_copy_a1`` the quality bar on them.
* ``iv_match_<set>_N``: histogram intersection of a set's pooled intervals with the performer's
  (the outside check of the interval uptake: phrases of 7 to 11 notes make sparse histograms).
* ``pc_match_a0_N`` / ``_a1_N``, the outside check: histogram intersection of the answers' pooled
  pitch classes with the performer's (1 = the same pitch classes in the same proportions).
* ``collapse_a1`` / ``longest_copy_a1`` (and ``_a0``): the quality bar on every answer of the
  session; ``longest_copy`` is the median longest run of answer events found verbatim in what the
  performer played before (a cache model's risk: replaying the performer).
Timing (this machine, one process): ``learn_us_p99`` per learned event, ``mix_us_p50`` the
memory's cost per sampled event (four heads) against ``sample_us_p50`` (the voice's sample and
step), ``due_ms_p99_a1`` / ``due_ms_max_a1`` the engine's ``due`` (what the loop calls to send;
it also decides at a call's end, model work included) in the sessions at adapt 1, ``_a0`` at 0.
``learn_jack_*`` (``--learn-jack`` pairs): ``bench_serve``'s session over a private jackd with 12
calls, at adapt 0 then 1 in turn; send lateness p99 / max, what the memory learned, xruns, notes
lost; one value per session, in order.
``nll_drop_10_notes`` leaves the velocity head out: the voices learned from scores without dynamics,
so any performer's velocities are news to them, and that head's drop is the largest.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from improv.evaluation.learning import idiom_overlaps, interval_histogram, memory_nll, play_calls, play_held, session_rows, skyline_phrases, top_line
from improv.evaluation.licks import SCALES, licks
from improv.evaluation.metrics import CopyIndex, collapse_rate
from improv.evaluation.mgeval import mgeval, pitch_class_piano_roll
from improv.model.voices import load_player, model_location
from improv.music.midi import read_midi_file
from improv.realtime.engine import Engine
from improv.realtime.memory import SessionMemory
from improv.realtime.memory_cursor import MemoryCursor
from improv.settings.serve_section import ServeSettings

FF = Path(__file__).resolve().parent.parent.parent / "shared" / "corpora" / "final-fantasy-piano"
CHECKPOINTS = (5, 10, 20)
AHEAD = 8  # answers to the next calls measured at each checkpoint
BPM = 100.0
FIELDS = ("pitch", "offset", "duration", "velocity")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--learn-voice", default="folk", help="voice the learning benchmark answers with (default: folk)")
    parser.add_argument("--learn-idioms", default="wholetone,blues,ff", help="idioms to play (default: wholetone,blues,ff)")
    parser.add_argument("--learn-jack", type=int, default=2, help="pairs of real-JACK serve sessions (bench_serve's, more calls) at adapt 0 then 1, for the send budget while the memory learns (default 2; 0 = none)")
    parser.add_argument("--learn-held", type=int, default=24, help="answers in each held set (the memory as N calls left it; see the docstring's held_*; default 24, 0 = none)")
    parser.add_argument("--learn-seeds", default="1,2,3", help="one session per seed and idiom, at adapt 0 and 1 (the licks' and the answers' seed); figures are their mean")
    parser.add_argument("--learn-quick", action="store_true", help="for iterating (some 5 min, not 30): the figures after 10 calls only, no JACK sessions, no timing")


def ff_phrases(count: int) -> list[np.ndarray] | None:
    """Phrases of the FF pieces' top lines, at most six from a piece, pieces in name order."""
    if not FF.is_dir():
        return None
    out: list[np.ndarray] = []
    for path in sorted(FF.glob("*.mid")):
        try:
            notes = read_midi_file(path).notes
        except Exception:  # an unreadable file is skipped, as the corpus reader would
            continue
        out += skyline_phrases(notes)[:6]
        if len(out) >= count:
            return out[:count]
    return out


def _pc_match(answers: list[np.ndarray], performer: list[np.ndarray]) -> float:
    def pooled(sets: list[np.ndarray]) -> np.ndarray:
        h = np.zeros(12)
        for a in sets:
            np.add.at(h, a["pitch"].astype(int) % 12, 1.0)
        return h / max(h.sum(), 1)

    return float(np.minimum(pooled(answers), pooled(performer)).sum())


def _session(model, phrases: list[np.ndarray], adapt: float, seed: int, rows: list[np.ndarray], due: list[float], checkpoints: tuple[int, ...] = CHECKPOINTS) -> dict:
    """One session at ``adapt``: answers, and the NLLs at the checkpoints (adapt 1 only)."""
    settings = dataclasses.replace(ServeSettings(), adapt=adapt, estimate_tempo=False, bpm=BPM)
    engine = Engine(model, settings, seed=seed)
    answers: list[np.ndarray] = []
    nll: dict[int, tuple[float, float, np.ndarray]] = {}
    now = 0.0
    for n in range(len(phrases)):
        got, now = play_calls(engine, [phrases[n]], BPM, 1, start=now, due_times=due)
        answers += got
        if adapt and n + 1 in checkpoints:
            per = [memory_nll(model, engine.memory, rows[k - 1], rows[k], now) for k in range(n + 1, n + 4)]
            voice, mixed = (float(np.mean(side)) for side in zip(*per))
            nll[n + 1] = (voice, mixed, _field_drops(model, engine.memory, rows, n + 1, now))
    return {"answers": answers, "nll": nll}


def _field_drops(model, memory: SessionMemory, rows: list[np.ndarray], n: int, now: float) -> np.ndarray:
    """NLL drop per field (FIELD order), the next three phrases after ``n`` calls."""
    drops = np.zeros(4)
    count = 0
    for k in range(n, n + 3):
        state = model.step(model.initial_state(), model.tokenizer.special(128))
        for row in rows[k - 1]:
            state = model.step(state, row)
        cursor = MemoryCursor(memory, memory.share(now, 1.0), memory.scale(now), list(rows[k - 1][-3:]))
        for row in rows[k]:
            for field, logits in enumerate(model.event_logits(state, row)):
                z = logits.astype(np.float64) - logits.max()
                drops[field] += float(np.log(np.exp(z).sum()) - z[int(row[field])]) + float(cursor.mix(field, row, logits)[int(row[field])])
            cursor.push(row)
            state = model.step(state, row)
            count += 1
    return drops / max(count, 1)


def _mgeval_figures(add: Callable[[str, float], None], n: int, sets: dict[str, list[np.ndarray]], performer: list[np.ndarray]) -> None:
    """MGEval as its authors compute it (``improv.evaluation.mgeval``): each set of eight (the answers
    at adapt 0, at 1, the performer's own next phrases) against the performer's phrases, on MGEval's
    pitch-class histogram (duration x velocity); and the pooled interval histograms' intersection
    with the performer's (``iv_match``: the outside check of the interval uptake)."""
    pooled = lambda phrases: np.sum([interval_histogram(p) * max(len(p) - 1, 0) for p in phrases], axis=0)  # noqa: E731
    own_iv = pooled(performer)
    own_iv = own_iv / max(own_iv.sum(), 1e-9)
    for name, phrases in sets.items():
        phrases = [p for p in phrases if len(p) > 1]
        for short, feature in (("pc", pitch_class_piano_roll), ("iv", interval_histogram)):
            for key, value in mgeval([feature(p) for p in phrases], [feature(p) for p in performer]).items():
                add(f"mg_{short}_{key}_{name}_{n}", value)
        iv = pooled(phrases)
        add(f"iv_match_{name}_{n}", float(np.minimum(iv / max(iv.sum(), 1e-9), own_iv).sum()))


def _copy(answers: list[np.ndarray], phrases: list[np.ndarray], tokenizer) -> float:
    runs = []
    for i, a in enumerate(answers):
        if len(a) < 2:
            continue
        index = CopyIndex([np.arange(0)] + [_codes(r) for r in session_rows(tokenizer, phrases[: i + 1])])
        runs.append(int(index.longest([_codes(session_rows(tokenizer, [a])[0])])[0]))
    return float(np.median(runs)) if runs else 0.0


def _codes(rows: np.ndarray) -> np.ndarray:
    """One code per event: pitch, offset, duration (velocity left out: a copy is the notes)."""
    rows = np.asarray(rows, dtype=np.int64)
    return rows[:, 0] * 77 * 77 + rows[:, 1] * 77 + rows[:, 2] if len(rows) else np.zeros(0, np.int64)


def _held(model, phrases: list[np.ndarray], adapt: float, seed: int, learn: int) -> list[np.ndarray]:
    settings = dataclasses.replace(ServeSettings(), adapt=adapt, estimate_tempo=False, bpm=BPM)
    return play_held(Engine(model, settings, seed=seed), phrases, learn, BPM, 1)


def _outside(answers: list[np.ndarray], everything: list[np.ndarray], n: int) -> float:
    """The share of the answers' notes (the answers to calls n, n+1, ...) below the lowest or above
    the highest note the performer had played by that call: the register's quality bar."""
    shares = []
    for k, answer in enumerate(answers):
        if not len(answer):
            continue
        played = np.concatenate([p["pitch"] for p in everything[: n + k + 1]]).astype(int)
        pitch = answer["pitch"].astype(int)
        shares.append(float(((pitch < played.min()) | (pitch > played.max())).mean()))
    return float(np.mean(shares))


def _repeats(phrases: list[np.ndarray]) -> float:
    """The share of the top lines' steps that strike the same key again (Final Fantasy's answers
    had 0.64 against the performer's 0.36)."""
    steps = [np.diff(top_line(p)) for p in phrases if len(p) > 1]
    steps = [x for x in steps if len(x)]
    return float(np.mean(np.concatenate(steps) == 0)) if steps else 0.0


def _held_figures(add: Callable[[str, float], None], model, everything: list[np.ndarray], seed: int, size: int, scale: tuple[int, ...] | None, checkpoints: tuple[int, ...] = CHECKPOINTS) -> None:
    """MGEval (``oa_ref``) on sets of ``size`` answers, as the memory N calls left it plays (held:
    it learns no more), at adapt 1; adapt 0's answers to the same calls; the performer's own next
    ``size`` phrases; each against the performer's phrases up to the set's last call. Eight answers
    drawn while the memory goes on learning (the ``mg_*`` figures) are a noisy KDE and not quite
    "after N calls"; these are both. With ``scale`` (the licks'), the share of each set's notes in
    it, each weighed by duration x velocity as MGEval's histogram weighs them (``held_scale_*``)."""
    a0 = _held(model, everything[: checkpoints[-1] + size], 0.0, seed, 0)  # at adapt 0 the memory has no say: one session serves
    for n in checkpoints:
        a1 = _held(model, everything[: n + size], 1.0, seed, n)
        performer = everything[: n + size]
        for name, phrases in (("a0", a0[n : n + size]), ("a1", a1[n:]), ("own", everything[n + size : n + 2 * size])):
            add(f"held_outside_{name}_{n}", _outside(phrases, everything, n + (size if name == "own" else 0)))
            add(f"held_repeat_{name}_{n}", _repeats(phrases))
            phrases = [p for p in phrases if len(p) > 1]
            for short, feature in (("pc", pitch_class_piano_roll), ("iv", interval_histogram)):
                add(f"held_{short}_{name}_{n}", mgeval([feature(p) for p in phrases], [feature(p) for p in performer])["oa_ref"])
            if scale is not None:
                notes = np.concatenate(phrases)
                weight = notes["duration"].astype(float) * notes["velocity"]
                add(f"held_scale_{name}_{n}", float((weight * np.isin(notes["pitch"] % 12, scale)).sum() / weight.sum()))
        if n == checkpoints[-1]:  # the quality bar on the held answers of the longest-learned memory
            add("held_collapse_a1", collapse_rate([session_rows(model.tokenizer, [x])[0] for x in a1[n:] if len(x)]))
            add("held_longest_copy_a1", _copy(a1, performer, model.tokenizer))


def _idiom(name: str, make: Callable[[int], list[np.ndarray]], model, seeds: list[int], due: dict[float, list[float]], held: int = 0, checkpoints: tuple[int, ...] = CHECKPOINTS) -> dict[str, float]:
    """One idiom's figures, each the mean over ``seeds`` (a session at adapt 0 and 1 per seed: the
    seed of the licks and of the answers); ``make(seed)`` gives that session's phrases and, after
    them, AHEAD more the performer would play next (the ceiling's)."""
    tok = model.tokenizer
    figures: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        figures.setdefault(f"learn_{name}_{key}", []).append(value)

    for seed in seeds:
        everything = make(seed)
        phrases = everything[: checkpoints[-1] + AHEAD]
        rows = session_rows(tok, phrases)
        played = {adapt: _session(model, phrases, adapt, seed, rows, due[adapt], checkpoints) for adapt in (0.0, 1.0)}
        for n in checkpoints:
            voice, mixed, per_field = played[1.0]["nll"][n]
            add(f"nll_voice_{n}", voice)
            add(f"nll_drop_{n}", voice - mixed)
            if n == 10:
                for f, d in zip(FIELDS, per_field):
                    add(f"nll_drop_10_{f}", float(d))
                add("nll_drop_10_notes", float(per_field[:3].sum()))  # without the dynamics
            window = slice(n, n + AHEAD)
            performer = phrases[: n + AHEAD]
            overlaps = {a: idiom_overlaps(played[a]["answers"][window], performer) for a in (0.0, 1.0)}
            # The ceiling: the performer's own next phrases, scored as the answers are
            own = idiom_overlaps(everything[n + AHEAD : n + 2 * AHEAD], performer)
            for feature, short in (("pitch_class", "pc"), ("pitch_class_count", "pc_count"), ("interval", "interval")):
                add(f"uptake_{short}_{n}", overlaps[1.0][feature] - overlaps[0.0][feature])
                add(f"reach_{short}_{n}", own[feature] - overlaps[0.0][feature])
            for a in (0.0, 1.0):
                add(f"pc_match_a{a:.0f}_{n}", _pc_match(played[a]["answers"][window], performer))
            _mgeval_figures(add, n, {"a0": played[0.0]["answers"][window], "a1": played[1.0]["answers"][window], "own": everything[n + AHEAD : n + 2 * AHEAD]}, performer)
        for a in (0.0, 1.0):
            answers = played[a]["answers"]
            add(f"collapse_a{a:.0f}", collapse_rate([session_rows(tok, [x])[0] for x in answers if len(x)]))
            add(f"longest_copy_a{a:.0f}", _copy(answers, phrases, tok))
        if held:
            _held_figures(add, model, everything, seed, held, SCALES.get(name), checkpoints)
    out = {key: round(float(np.mean(values)), 4 if "collapse" in key else 3) for key, values in figures.items()}
    for n in checkpoints:  # the worst session's uptake, beside the mean
        for short in ("pc", "pc_count", "interval"):
            out[f"learn_{name}_uptake_{short}_{n}_min"] = round(float(np.min(figures[f"learn_{name}_uptake_{short}_{n}"])), 3)
        for short in ("pc", "iv"):  # MGEval's uptake and reach, per session then averaged
            for oa in ("oa_ref", "oa_gen"):
                get = lambda who: np.array(figures[f"learn_{name}_mg_{short}_{oa}_{who}_{n}"])  # noqa: E731
                out[f"learn_{name}_mg_{short}_{oa}_uptake_{n}"] = round(float(np.mean(get("a1") - get("a0"))), 3)
                out[f"learn_{name}_mg_{short}_{oa}_reach_{n}"] = round(float(np.mean(get("own") - get("a0"))), 3)
            if held:
                get = lambda who: np.array(figures[f"learn_{name}_held_{short}_{who}_{n}"])  # noqa: E731
                out[f"learn_{name}_held_{short}_uptake_{n}"] = round(float(np.mean(get("a1") - get("a0"))), 3)
                out[f"learn_{name}_held_{short}_uptake_{n}_min"] = round(float(np.min(get("a1") - get("a0"))), 3)
                out[f"learn_{name}_held_{short}_reach_{n}"] = round(float(np.mean(get("own") - get("a0"))), 3)
    return out


def _timing(model, phrases: list[np.ndarray]) -> dict[str, float]:
    """The memory's own costs, against the voice's sample and step, on this machine."""
    memory = SessionMemory(model.tokenizer, adapt=1.0)
    rows = np.concatenate(session_rows(model.tokenizer, phrases))
    learn = []
    for row in rows:
        t = time.perf_counter()
        memory.learn(row, 0.0)
        learn.append(time.perf_counter() - t)
    cursor = memory.cursor(rows[-3:], 0.0)
    rng = np.random.default_rng(0)
    state = model.step(model.initial_state(), model.tokenizer.special(128))
    plain, mixed, stepping = [], [], []
    keep = lambda field, row, logits, mask: (logits, mask)  # noqa: E731 - a guide that bends nothing
    for _ in range(200):
        t = time.perf_counter()
        row = model.sample_event(state, rng)
        plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        model.sample_event(state, rng, guide=cursor.bend(keep))
        mixed.append(time.perf_counter() - t)
        t = time.perf_counter()
        state = model.step(state, row if row[0] < 128 else rows[0])
        stepping.append(time.perf_counter() - t)
        cursor.push(row if row[0] < 128 else rows[0])
    mix_only = np.array(mixed) - np.array(plain)
    sample = np.array(plain) + np.array(stepping)
    return {
        "learn_us_p50": round(float(np.percentile(learn, 50)) * 1e6, 1),
        "learn_us_p99": round(float(np.percentile(learn, 99)) * 1e6, 1),
        "sample_us_p50": round(float(np.median(sample)) * 1e6, 1),
        "mix_us_p50": round(float(np.median(mix_only)) * 1e6, 1),
        "memory_events": memory.events,
    }


def run(args: argparse.Namespace) -> dict[str, float]:
    model = load_player(model_location(None, None, getattr(args, "learn_voice", "folk"))).step_model()
    seeds = [int(x) for x in str(getattr(args, "learn_seeds", "1,2,3")).split(",")]
    held = int(getattr(args, "learn_held", 24))
    quick = bool(getattr(args, "learn_quick", False))
    checkpoints = (10,) if quick else CHECKPOINTS
    count = CHECKPOINTS[-1] + 2 * max(AHEAD, held)  # the session's phrases, then the ceiling's
    idioms: dict[str, Callable[[int], list[np.ndarray]]] = {scale: (lambda seed, scale=scale: licks(count, scale, seed)) for scale in ("wholetone", "blues")}
    ff = ff_phrases(count)
    if ff is None or len(ff) < count:
        print(f"note: the Final Fantasy idiom is skipped: {FF} is absent or has too few phrases", flush=True, file=sys.stderr)
    else:
        idioms["ff"] = lambda seed: ff  # the same pieces; the seed is the answers'
    wanted = str(getattr(args, "learn_idioms", "wholetone,blues,ff")).split(",")
    idioms = {name: make for name, make in idioms.items() if name in wanted}
    out: dict[str, float] = {"learn_sessions_per_idiom": len(seeds)}
    due: dict[float, list[float]] = {0.0: [], 1.0: []}
    for name, make in idioms.items():
        out.update(_idiom(name, make, model, seeds, due, held, checkpoints))
        shown = {k[len(f"learn_{name}_"):]: v for k, v in out.items() if k.startswith(f"learn_{name}_held_") and "_10" in k and ("uptake" in k or "repeat" in k)}
        print(f"# learn {name}: {shown}", file=sys.stderr, flush=True)  # a long run's progress
    if not quick:
        out.update(_timing(model, licks(CHECKPOINTS[-1] + 2 * AHEAD, "wholetone", seeds[0])))
        out.update(_jack_budgets(int(getattr(args, "learn_jack", 2))))
    for adapt, times in ((a, t) for a, t in due.items() if t):  # the engine's send path, learning (adapt 1) or not
        out[f"learn_due_ms_p99_a{adapt:.0f}"] = round(float(np.percentile(times, 99)) * 1e3, 3)
        out[f"learn_due_ms_max_a{adapt:.0f}"] = round(float(np.max(times)) * 1e3, 3)
    return out


JACK_CALLS = 12  # bench_serve's calls (each but the last ended by the next): enough for the memory's say


def _jack_budgets(pairs: int) -> dict[str, float]:
    """Send lateness over real JACK ports (``bench_serve.session``: a private jackd, improv's loop at
    its real-time priority, a listener in another process) at adapt 0 and 1, alternating in this
    run; at adapt 1 the memory learns each call in the loop's think slices and is mixed into every
    sampled event of the dense answers. Each figure is listed per session, in order."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from bench_serve import session
    from support.jack_server import JackServer

    out: dict[str, list[float]] = {}
    for _ in range(pairs):
        for adapt in (0.0, 1.0):
            jack = JackServer(period=64)
            reason = jack.start()
            if reason is not None:
                print(f"note: no JACK ({reason}): the send budget during learning is not measured", file=sys.stderr)
                return {}
            try:
                got = session(240, JACK_CALLS, jack, 64, adapt=adapt)
            finally:
                jack.stop()
            for key in ("send_late_p99_ms", "send_late_max_ms", "serve_memory_events", "jack_xruns", "recv_missing"):
                if key in got:
                    out.setdefault(f"learn_jack_{key}_a{adapt:.0f}", []).append(round(float(got[key]), 3))
    return {key: " / ".join(f"{v:g}" for v in values) for key, values in out.items()}  # type: ignore[misc]


def session_picture(out_png: str, calls: int = 12, seed: int = 1, voice: str = "folk") -> dict[float, list[float]]:
    """The README's picture: the same ``calls`` whole-tone licks played into the engine at adapt 0
    (top) and 1 (bottom); the performer's notes blue, improv's orange where they are in the
    whole-tone scale and grey where not, each answer's whole-tone share above it. Returns the
    shares per exchange, per adapt."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from improv.evaluation.licks import WHOLE_TONE
    from improv.io.files import write_atomic
    from improv.realtime.report import Recorder

    model = load_player(model_location(None, None, voice)).step_model()
    fig, axes = plt.subplots(2, 1, figsize=(22, 7.5), sharex=True)
    shares: dict[float, list[float]] = {}
    for ax, adapt in zip(axes, (0.0, 1.0)):
        recorder = Recorder()
        engine = Engine(model, dataclasses.replace(ServeSettings(), adapt=adapt, estimate_tempo=False, bpm=BPM), seed=seed, recorder=recorder)
        answers, now = play_calls(engine, licks(calls, "wholetone", seed), BPM, 1)
        engine.shutdown(now)
        starts = [t for t, text in recorder.marks if text.startswith("answer")]
        shares[adapt] = [round(float(np.isin(a["pitch"].astype(int) % 12, WHOLE_TONE).mean()), 2) if len(a) else 0.0 for a in answers]
        for who, notes in recorder.notes.items():
            for n in notes:
                inside = n.pitch % 12 in WHOLE_TONE
                colour = "#2166ac" if who == "performer" else "#e08214" if inside else "#9a9a9a"
                ax.add_patch(plt.Rectangle((n.onset, n.pitch - 0.4), max(n.duration, 0.05), 0.8, color=colour, lw=0))
        for t, share in zip(starts, shares[adapt]):
            ax.axvline(t, color="#e08214", lw=0.6, ls=":")
            ax.text(t + 0.2, 95, f"{share:.0%}", color="#b35806", fontsize=9)
        ax.set_ylim(40, 100)
        ax.set_xlim(0, now)
        ax.set_ylabel("pitch")
        ax.set_title(f"adapt {adapt:g}: answers in the whole-tone scale {np.mean(shares[adapt]):.0%} (orange = in the scale, grey = outside; blue = the performer)", loc="left", fontsize=11)
    axes[-1].set_xlabel("seconds")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    write_atomic(out_png, buf.getvalue())
    return shares


if __name__ == "__main__":  # python benchmarks/bench_learn.py docs/learn.png: the README's picture
    print(session_picture(sys.argv[1]))
