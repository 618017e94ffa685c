"""What ``learn_held``'s overlap can show: the same MGEval ``oa_ref`` (24 "answers" against the
performer's first 34 phrases, pitch-class piano roll and interval histograms) for sets that need
no model, per idiom and seed:

* ``own``: the performer's own next 24 phrases (``learn_held``'s ``pc_own`` / ``iv_own``);
* ``ideal``: perfect answers in the idiom, ``DRAWS`` fresh sets of 24 from the same source (the
  lick script with other seeds; Final Fantasy: 24 phrases drawn from the pieces after the
  performer's), their mean and 5th / 95th percentiles: the ceiling, and how far one set of 24
  moves by chance alone;
* ``major``: the wrong idiom, licks by the same script in C major (the folk voice's home), and
  ``other``, the other scale's licks: what a set that took up nothing of the idiom's scale scores.

Without a model, in seconds. The figures are MGEval's as ``learn_held`` computes them
(``learn_held.overlaps``).

    python benchmarks/learn_ceiling.py --idioms wholetone,blues,ff --seeds 1,2,3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_learn as B  # noqa: E402
from learn_held import LEARN, SIZE, overlaps  # noqa: E402

from improv.evaluation.licks import SCALES, lick, licks  # noqa: E402

DRAWS = 20
MAJOR = (0, 2, 4, 5, 7, 9, 11)


def _draws(make, count: int = DRAWS) -> dict[str, float]:
    """Mean and 5th / 95th percentiles of ``overlaps`` over ``count`` sets ``make(k)`` gives."""
    got = [make(k) for k in range(count)]
    out = {}
    for short in ("pc", "iv"):
        values = np.array([g[short] for g in got])
        out[short] = float(values.mean())
        out[f"{short}_p5"], out[f"{short}_p95"] = (float(x) for x in np.percentile(values, [5, 95]))
    return out


def ceiling(name: str, seed: int, pool: list[np.ndarray] | None) -> dict[str, float]:
    """One idiom and seed's figures (see the module docstring); ``pool``: Final Fantasy's phrases."""
    count = LEARN + 2 * SIZE
    phrases = pool[:count] if name == "ff" and pool is not None else licks(count, name, seed)
    performer = phrases[: LEARN + SIZE]
    out = {f"{k}_own": v for k, v in overlaps(phrases[LEARN + SIZE :], performer).items()}
    if name == "ff":
        rest = pool[LEARN + SIZE :]
        ideal = lambda k: overlaps([rest[i] for i in np.random.default_rng((seed, k)).choice(len(rest), SIZE, replace=False)], performer)  # noqa: E731
    else:
        ideal = lambda k: overlaps(licks(SIZE, name, 1000 * seed + k + 1), performer)  # noqa: E731
    out.update({f"{k}_ideal" if "_" not in k else k.replace("_", "_ideal_"): v for k, v in _draws(ideal).items()})
    wrong = lambda scale: lambda k: overlaps([lick(np.random.default_rng((seed, k, 7)), scale) for _ in range(SIZE)], performer)  # noqa: E731
    out.update({f"{k}_major": v for k, v in _draws(wrong(MAJOR)).items() if "_" not in k})
    if name in SCALES:
        other = SCALES["blues" if name == "wholetone" else "wholetone"]
        out.update({f"{k}_other": v for k, v in _draws(wrong(other)).items() if "_" not in k})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idioms", default="wholetone,blues,ff")
    parser.add_argument("--seeds", default="1,2,3")
    args = parser.parse_args()
    pool = B.ff_phrases(10_000) if "ff" in args.idioms.split(",") else None
    for name in args.idioms.split(","):
        if name == "ff" and pool is None:
            print(f"ff: skipped ({B.FF} is absent)")
            continue
        for seed in (int(s) for s in args.seeds.split(",")):
            print(name, seed, {k: round(v, 3) for k, v in ceiling(name, seed, pool).items()}, flush=True)


if __name__ == "__main__":
    main()
