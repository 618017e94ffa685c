"""The accompanist's one learned part: how a chorale melody moves from beat to beat, in its key.

``python -m improv.training.accompany`` counts, in the Bach chorales that ``improv eval
--accompany`` does not play (its held-out pieces are every 7th from the 4th), which pitch class
(relative to the key's tonic) the soprano sounds on a beat given the one it sounded just before,
separately for major and minor, and writes the table as ``improv/realtime/melody_moves.py`` (pure
data: the live path reads no files). A minute of one core.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from improv.io.files import write_atomic
from improv.music.keys import estimate_key

OUT = Path(__file__).resolve().parent.parent / "realtime" / "melody_moves.py"


def training_chorales(limit: int) -> list[tuple[list[tuple[float, float, int]], int, bool]]:
    from music21 import corpus

    paths = sorted(corpus.getComposer("bach"), key=lambda p: p.name)
    held_out = set(paths[3::7])
    out = []
    for path in paths:
        if path in held_out or len(out) >= limit:
            continue
        try:
            score = corpus.parse(path)
        except Exception:
            continue
        parts = {p.partName: p for p in score.parts}
        if "Soprano" not in parts:
            continue
        notes = [(float(n.offset), float(n.offset + n.quarterLength), int(n.pitch.midi)) for n in parts["Soprano"].flatten().notes if hasattr(n, "pitch")]
        w = np.zeros(12)
        for a, b, p in notes:
            w[p % 12] += b - a
        tonic, minor = estimate_key(w)
        out.append((notes, tonic, minor))
    return out


def fit(pieces: list) -> tuple[np.ndarray, np.ndarray]:
    """P(pc on the beat | pc sounding just before it), (2, 12, 12), and the counts of the same given
    also the pc of the beat before that, (2, 12, 12, 12); key-relative; the first add-one smoothed."""
    first = np.ones((2, 12, 12))
    second = np.zeros((2, 12, 12, 12))
    for notes, tonic, minor in pieces:
        end = max(b for _, b, _ in notes)

        def at(t: float) -> int | None:
            for a, b, p in notes:
                if a <= t < b:
                    return (p - tonic) % 12
            return None

        for beat in range(2, int(end)):
            earlier, before, now = at(beat - 1.1), at(beat - 0.1), at(float(beat))
            if before is not None and now is not None:
                first[int(minor), before, now] += 1
                if earlier is not None:
                    second[int(minor), earlier, before, now] += 1
    return first / first.sum(axis=2, keepdims=True), second


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pieces", type=int, default=120)
    args = p.parse_args(argv)
    pieces = training_chorales(args.pieces)
    table, pairs = fit(pieces)
    rows = ",\n".join("    " + repr([[round(float(x), 4) for x in row] for row in mode]) for mode in table)
    counts = ",\n".join("    " + repr([[[int(x) for x in row] for row in before] for before in mode]) for mode in pairs)
    text = (
        '"""How a chorale melody moves from beat to beat: P(pitch class on the beat | the one just\n'
        "before), relative to the key's tonic; [0] major, [1] minor. Learned from "
        f"{len(pieces)} Bach chorales\nnot played by `improv eval --accompany`; made by "
        f"`python -m improv.training.accompany --pieces {args.pieces}` (do not edit).\"\"\"\n\n"
        f"MOVES = [\n{rows},\n]\n\n"
        "# Counts of the pc on the beat given the two before it: [minor][pc a beat earlier][pc just before][pc on the beat].\n"
        f"MOVES2 = [\n{counts},\n]\n"
    )
    write_atomic(OUT, text.encode())
    print(f"wrote {OUT} from {len(pieces)} chorales", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
