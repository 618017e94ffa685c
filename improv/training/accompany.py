"""The accompanist's one learned part: the melody note the next beat will bring.

``python -m improv.training.accompany`` trains ``realtime.melody_guess``'s small network on the
Bach chorales that ``improv eval --accompany`` does not play (its held-out pieces are every 7th
from the 4th): at each beat of each soprano, from the key-relative pitch classes struck at the four
beats before, the beat's place in the bar and the mode, the pitch class struck or sounding on the
beat. One core, seeded, about a minute; the weights are written into
``improv/realtime/melody_net.py`` (pure data: the live path reads no files).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from improv.io.files import write_atomic
from improv.music.keys import estimate_key
from improv.realtime.melody_guess import CONTEXT, HIDDEN, INPUTS, NONE, features, pack

OUT = Path(__file__).resolve().parent.parent / "realtime" / "melody_net.py"

Piece = tuple[list[tuple[float, float, int]], int, bool, int]  # soprano (on, off, pitch in beats), tonic, minor, beats a bar


def training_chorales(limit: int) -> list[Piece]:
    from music21 import corpus

    paths = sorted(corpus.getComposer("bach"), key=lambda p: p.name)
    held_out = set(paths[3::7])
    out: list[Piece] = []
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
        if not notes:
            continue
        w = np.zeros(12)
        for a, b, p in notes:
            w[p % 12] += b - a
        tonic, minor = estimate_key(w)
        ts = score.recurse().getElementsByClass("TimeSignature")
        bar = int(ts[0].barDuration.quarterLength) if ts else 4
        out.append((notes, tonic, minor, max(1, bar)))
    return out


def examples(pieces: list[Piece]) -> tuple[np.ndarray, np.ndarray]:
    """(features, target) at every beat with a note on or sounding, as the accompanist sees them:
    the note struck last before each of the four earlier beats (0.1 beat before each)."""
    xs, ys = [], []
    for notes, tonic, minor, bar in pieces:
        onsets = [a for a, _, _ in notes]

        def struck(t: float) -> int:
            i = int(np.searchsorted(onsets, t, side="right")) - 1
            return NONE if i < 0 else (notes[i][2] - tonic) % 12

        end = max(b for _, b, _ in notes)
        for beat in range(1, int(end)):
            sounding = [p for a, b, p in notes if a <= beat < b]
            if not sounding:
                continue
            before = [struck(beat - 0.1 - k) for k in range(CONTEXT)]
            xs.append(features(before, beat % bar, minor))
            ys.append((sounding[-1] - tonic) % 12)
    return np.array(xs, dtype=np.float32), np.array(ys)


def fit(x: np.ndarray, y: np.ndarray, epochs: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(INPUTS, HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, 12))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
    tx, ty = torch.tensor(x), torch.tensor(y)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(tx), generator=gen)
        for i in range(0, len(tx), 128):
            idx = order[i : i + 128]
            loss = torch.nn.functional.cross_entropy(net(tx[idx]), ty[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return tuple(p.detach().numpy().astype(np.float64) for p in (net[0].weight, net[0].bias, net[2].weight, net[2].bias))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pieces", type=int, default=120, help="training chorales (default 120)")
    p.add_argument("--epochs", type=int, default=60, help="passes over them (default 60)")
    args = p.parse_args(argv)
    start = time.monotonic()
    pieces = training_chorales(args.pieces)
    x, y = examples(pieces)
    weights = fit(x, y, args.epochs)
    blob = pack(*weights)
    lines = "\n".join(f'    "{blob[i:i + 96]}"' for i in range(0, len(blob), 96))
    text = (
        '"""The weights of ``melody_guess.MelodyGuess``: float32, little-endian, base64. Learned from\n'
        f"{len(pieces)} Bach chorales not played by `improv eval --accompany` ({len(y)} beats); made by\n"
        f"`python -m improv.training.accompany --pieces {args.pieces} --epochs {args.epochs}` (do not edit).\n"
        '"""\n\n'
        f"WEIGHTS = (\n{lines}\n)\n"
    )
    write_atomic(OUT, text.encode())
    print(f"wrote {OUT}: {len(pieces)} chorales, {len(y)} beats, {time.monotonic() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
