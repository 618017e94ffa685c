"""README's figures, rerun from the commands written beside them and checked within a tolerance.

    python benchmarks/readme_figures.py                  # the cheap groups: no ../shared, no training (CI runs these)
    python benchmarks/readme_figures.py --only eval-bach # torch, about a minute
    python benchmarks/readme_figures.py --only finetune-split --shared ../shared   # needs shared/corpora
    python benchmarks/readme_figures.py --all            # every group above

Each figure names the README text that quotes it (a test keeps README and this list in step), the
command beside it there, the value, and how far a rerun may be from it. Exit status 1 when a
figure is off. The trained figures of the fine-tuning table take minutes to hours of CPU and are
not rerun here: their commands are in README ("Fine-tuning: start from the base").

Why these checks: a README figure that a fresh clone cannot reproduce (the fine-tuning table's
held-out NLL depended on how the data folder was spelled, issue 21) is worse than none.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Figure:
    group: str
    name: str
    readme: str  # the text README quotes it with (must appear in README.md)
    value: float
    tolerance: float  # absolute
    pick: Callable[[dict[str, Any]], float]


def _voice(name: str) -> Callable[[dict[str, Any]], float]:
    return lambda r: next(v["heldout_nll"] for v in r["voices"] if v["name"] == name)


FIGURES = [
    # `improv voices`: each shipped voice's held-out NLL (its .npz says it).
    Figure("voices", "bach heldout_nll", "bach            chordal       lstm 2x256     5.8         2.253", 2.253, 0.0005, _voice("bach")),
    Figure("voices", "folk heldout_nll", "folk (default)  single line   lstm 2x256     5.8         2.270", 2.270, 0.0005, _voice("folk")),
    Figure("voices", "renaissance heldout_nll", "renaissance     polyphonic    lstm 2x256     5.8         2.082", 2.082, 0.0005, _voice("renaissance")),
    Figure("voices", "base heldout_nll", "base            polyphonic    lstm 2x256     5.8         2.381", 2.381, 0.0005, _voice("base")),
    # `improv demo --fast` (simulated time; README quotes the real-time run, which plays the same
    # session: benchmarks/bench_user.py). Note counts get a little room: another CPU's float
    # rounding may sample one event differently.
    Figure("demo", "calls", "improv demo: 6 calls cut from the voice's held-out pieces", 6, 0, lambda r: r["calls"]),
    Figure("demo", "exchanges", "improv demo: 6 exchanges (1 barge-ins)", 6, 0, lambda r: r["exchanges"]),
    Figure("demo", "performer_notes", "performer 66 notes", 66, 0, lambda r: r["performer_notes"]),
    Figure("demo", "improv_notes", "improv 48 notes -> demo.mid", 48, 8, lambda r: r["improv_notes"]),
    # The wheel (`pip wheel --no-deps -w DIR .`): the playing weights only.
    Figure("wheel", "wheel_mb", "the wheel is 22.2 MB", 22.2, 0.3, lambda r: r["wheel_mb"]),
    # `improv eval --voice bach` (torch).
    Figure("eval-bach", "heldout_nll", "all four heads               2.253       4.008     6.148", 2.253, 0.002, lambda r: r["heldout_nll"]),
    Figure("eval-bach", "markov_nll", "all four heads               2.253       4.008     6.148", 4.008, 0.002, lambda r: r["markov_nll"]),
    Figure("eval-bach", "unigram_nll", "all four heads               2.253       4.008     6.148", 6.148, 0.002, lambda r: r["unigram_nll"]),
    Figure("eval-bach", "pitch_class_overlap", "pitch_class_overlap          0.913", 0.913, 0.002, lambda r: r["pitch_class_overlap"]),
    Figure("eval-bach", "note_length_overlap", "note_length_overlap          0.892", 0.892, 0.002, lambda r: r["note_length_overlap"]),
    # The fine-tuning comparison's split of the 92 Final Fantasy pieces, and its baselines (no
    # training: the split and the baselines fitted on its training pieces).
    Figure("finetune-split", "heldout_pieces", "83 to train, 9 held out", 9, 0, lambda r: r["heldout_pieces"]),
    Figure("finetune-split", "unigram_nll", "unigram 11.330, order-4 Markov 12.581", 11.330, 0.001, lambda r: r["unigram_nll"]),
    Figure("finetune-split", "markov_nll", "unigram 11.330, order-4 Markov 12.581", 12.581, 0.001, lambda r: r["markov_nll"]),
]
CHEAP = ("voices", "demo", "wheel")  # seconds to a minute, nothing outside the clone


def improv(*args: str, cwd: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "improv", *args], capture_output=True, text=True, cwd=cwd, timeout=1800)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"improv {' '.join(args)}: exit {done.returncode}: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)


def measure(group: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    if group == "voices":
        return {"voices": improv("voices", "--json", cwd=work)}
    if group == "demo":
        return improv("demo", "--fast", "--json", "--record", str(work / "demo.mid"), cwd=work)
    if group == "wheel":
        out = work / "wheel"
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)], check=True, capture_output=True, timeout=600)
        (wheel,) = out.glob("*.whl")
        return {"wheel_mb": wheel.stat().st_size / 1e6}
    if group == "eval-bach":
        return improv("eval", "--voice", "bach", "--json", cwd=work)
    if group == "finetune-split":
        return finetune_split(Path(args.shared) / "corpora" / "final-fantasy-piano")
    raise ValueError(group)


def finetune_split(folder: Path) -> dict[str, Any]:
    """The held-out pieces `improv train --data final-fantasy-piano --from base` chooses, and the
    baselines fitted on the rest (what its held-out NLL is compared with)."""
    sys.path.insert(0, str(ROOT))
    from improv.corpus.load import load_corpus
    from improv.evaluation.baselines import MarkovModel, UnigramModel
    from improv.model.voices import load_player, voice_path
    from improv.settings.sections import Settings
    from improv.training.batches import split_pieces

    if not folder.is_dir():
        raise RuntimeError(f"no {folder}: pass --shared PATH (the folder holding corpora/final-fantasy-piano)")
    settings = Settings()
    tok = load_player(voice_path("base")).tokenizer  # fine-tuning keeps the base's tokenizer
    pieces, _ = load_corpus([str(folder)], tok, settings.corpus, progress=False)
    train, held = split_pieces([p for p in pieces if len(p.tokens) >= 3], settings.train.val_fraction, settings.train.seed)
    rows = [p.tokens for p in held]
    total, n = UnigramModel(tok.sizes).fit([p.tokens for p in train]).nll(rows)
    markov, m = MarkovModel(settings.eval.markov_order, tok.sizes).fit([p.tokens for p in train]).nll(rows)
    return {"heldout_pieces": len(held), "unigram_nll": float(total.sum() / n), "markov_nll": float(markov.sum() / m)}


def main(argv: list[str] | None = None) -> int:
    groups = list(dict.fromkeys(f.group for f in FIGURES))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated groups: {', '.join(groups)} (default: {', '.join(CHEAP)})")
    parser.add_argument("--all", action="store_true", help="every group")
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"), help="the folder holding corpora/ (default: ../shared)")
    args = parser.parse_args(argv)
    chosen = groups if args.all else args.only.split(",") if args.only else list(CHEAP)
    unknown = sorted(set(chosen) - set(groups))
    if unknown:
        parser.error(f"unknown group {unknown[0]} (groups: {', '.join(groups)})")
    off = 0
    with tempfile.TemporaryDirectory() as tmp:
        for group in chosen:
            result = measure(group, args, Path(tmp))
            for f in (f for f in FIGURES if f.group == group):
                got = float(f.pick(result))
                ok = math.isfinite(got) and abs(got - f.value) <= f.tolerance + 1e-9
                off += not ok
                print(f"{'ok ' if ok else 'OFF'} {group:<15} {f.name:<22} README {f.value:g}, now {got:.4g} (within {f.tolerance:g})", flush=True)
    print(f"readme_figures: {'all figures hold' if not off else f'{off} figures off'}")
    return 1 if off else 0


if __name__ == "__main__":
    sys.exit(main())
