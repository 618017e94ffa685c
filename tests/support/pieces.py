"""Small synthetic training pieces: arpeggios with chords, short and learnable, for the training
tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from improv.music.notes import Note
from improv.music.tokenizer import Tokenizer

TOK = Tokenizer()


@dataclass
class Piece:
    name: str
    tokens: np.ndarray
    source: str = ""


def make_pieces(n: int = 12, seed: int = 0, low: int = 30, high: int = 90) -> list[Piece]:
    """Arpeggios with chords in random keys, one rhythm and loudness per piece: short and learnable."""
    rng = np.random.default_rng(seed)
    pieces = []
    for i in range(n):
        notes, t = [], 0.0
        root = int(rng.integers(low, high - 12))
        step = float(rng.choice([0.25, 0.5, 1.0, 1 / 3]))
        velocity = int(rng.integers(40, 110))
        for k in range(int(rng.integers(10, 40))):
            if k % 4 == 3:  # a chord
                for interval in (0, 4, 7):
                    notes.append(Note(root + interval, t, 1.0, velocity))
            else:
                notes.append(Note(root + (0, 4, 7, 12)[k % 4], t, step, velocity))
            t += step
        pieces.append(Piece(f"piece{i:02d}.mid", TOK.encode(notes)))
    return pieces
