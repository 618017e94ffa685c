"""``bench_learn``'s held figures after 10 calls, alone: what README's learn4 table quotes.

The full ``bench_learn`` takes some 48 minutes an idiom on a loaded two-core machine (and
``--learn-quick`` still plays the eight-answer window sessions); this plays only the held sets,
exactly as ``bench_learn._held_figures`` does (``_held``, MGEval's ``oa_ref`` on the pitch-class
piano roll and on interval histograms, 24 answers a set), after 10 calls, per seed and idiom, and
prints each seed's figures and the idiom's mean; beside them the outside checks: ``scale_*`` (licks)
the share of the notes in the licks' scale, ``entropy_*`` each phrase's pitch-class entropy (nats,
MGEval's duration x velocity weights; the licks' own is ``entropy_own``), and the quality bar on
every answer of the session, ``collapse_*`` and ``copy_*`` (``bench_learn._copy``: the median
longest run of an answer found verbatim in what the performer had played). ``--cut`` / ``--ending`` set
``memory_cursor.OUTSIDE_CUT`` / ``memory.ENDING_SHARE`` for the run (0 = that part off), to
measure the parts one at a time.

    python benchmarks/learn_held.py --idioms wholetone,blues,ff --seeds 1,2,3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_learn as B  # noqa: E402

from improv.evaluation.learning import interval_histogram, session_rows  # noqa: E402
from improv.evaluation.licks import SCALES, licks  # noqa: E402
from improv.evaluation.metrics import collapse_rate  # noqa: E402
from improv.evaluation.mgeval import mgeval, pitch_class_piano_roll  # noqa: E402
from improv.model.voices import load_player, model_location  # noqa: E402
from improv.realtime import memory, memory_cursor  # noqa: E402

LEARN, SIZE = 10, 24


def overlaps(answers: list[np.ndarray], performer: list[np.ndarray]) -> dict[str, float]:
    """MGEval's ``oa_ref`` of ``answers`` (those of two notes or more) against ``performer``, on the
    pitch-class piano roll (``pc``) and interval histograms (``iv``), as ``bench_learn._held_figures``."""
    answers = [p for p in answers if len(p) > 1]
    return {short: mgeval([feature(p) for p in answers], [feature(p) for p in performer])["oa_ref"] for short, feature in (("pc", pitch_class_piano_roll), ("iv", interval_histogram))}


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def figures(name: str, phrases: list[np.ndarray], a0: list[np.ndarray], a1: list[np.ndarray]) -> dict[str, float]:
    out = {}
    performer = phrases[: LEARN + SIZE]
    for who, answers in (("a0", a0[LEARN : LEARN + SIZE]), ("a1", a1[LEARN:]), ("own", phrases[LEARN + SIZE : LEARN + 2 * SIZE])):
        out.update({f"{short}_{who}": v for short, v in overlaps(answers, performer).items()})
        answers = [p for p in answers if len(p) > 1]
        out[f"repeat_{who}"] = B._repeats(answers)
        # the outside check of the pc overlap: how spread each phrase's pitch classes are (nats, MGEval's weights)
        out[f"entropy_{who}"] = float(np.mean([_entropy(pitch_class_piano_roll(p)) for p in answers]))
        if name in SCALES:  # the share of the notes in the licks' scale, weighed as MGEval's histogram weighs them
            notes = np.concatenate(answers)
            weight = notes["duration"].astype(float) * notes["velocity"]
            out[f"scale_{who}"] = float((weight * np.isin(notes["pitch"] % 12, SCALES[name])).sum() / weight.sum())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idioms", default="wholetone,blues,ff")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--voice", default="folk")
    parser.add_argument("--cut", type=float, default=None, help="memory_cursor.OUTSIDE_CUT for this run")
    parser.add_argument("--ending", type=float, default=None, help="memory.ENDING_SHARE for this run")
    args = parser.parse_args()
    if args.cut is not None:
        memory_cursor.OUTSIDE_CUT = args.cut
    if args.ending is not None:
        memory.ENDING_SHARE = args.ending
    model = load_player(model_location(None, None, args.voice)).step_model()
    count = B.CHECKPOINTS[-1] + 2 * max(B.AHEAD, SIZE)
    started = time.time()
    for name in args.idioms.split(","):
        got: dict[str, list[float]] = {}
        for seed in (int(s) for s in args.seeds.split(",")):
            phrases = B.ff_phrases(count) if name == "ff" else licks(count, name, seed)
            if phrases is None:
                print(f"{name}: skipped ({B.FF} is absent)")
                break
            a0 = B._held(model, phrases[: LEARN + SIZE], 0.0, seed, 0)
            a1 = B._held(model, phrases[: LEARN + SIZE], 1.0, seed, LEARN)
            one = figures(name, phrases, a0, a1)
            one["pc_uptake"], one["iv_uptake"] = one["pc_a1"] - one["pc_a0"], one["iv_a1"] - one["iv_a0"]
            one["pc_reach"] = one["pc_own"] - one["pc_a0"]
            for who, answers in (("a0", a0), ("a1", a1)):  # the quality bar, on every answer of the session
                one[f"collapse_{who}"] = collapse_rate([session_rows(model.tokenizer, [x])[0] for x in answers if len(x)])
                one[f"copy_{who}"] = B._copy(answers, phrases[: LEARN + SIZE], model.tokenizer)
            print(name, seed, {k: round(v, 3) for k, v in one.items()}, flush=True)
            for k, v in one.items():
                got.setdefault(k, []).append(v)
        if got:
            mean = {k: round(float(np.mean(v)), 3) for k, v in got.items()}
            print(f"## {name} (mean of {len(got['pc_a0'])} seeds, {time.time() - started:.0f} s): {mean}", flush=True)


if __name__ == "__main__":
    main()
