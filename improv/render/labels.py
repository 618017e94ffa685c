"""Where the piano roll's exchange labels go: pure layout, no matplotlib.

Each label has a position (inches from the left) and its forms, longest first ("3: G minor,
123 bpm", "3: G minor", "3"). A label takes the longest form that ends before the next label on a
row begins, on the first row where it fits; the number alone goes on the first row it fits on. So
on a crowded session every exchange keeps at least its number, and no two labels on a row overlap
(before this, one close pair shrank every label to its number, or dropped them all).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

CHAR_INCHES = {8: 0.068, 7: 0.06}  # the mean width of a character at a font size (DejaVu Sans)
GAP_INCHES = 0.08  # between two labels on a row


@dataclass(frozen=True)
class Placed:
    text: str  # "" when the label did not fit anywhere
    row: int
    start: float  # inches
    end: float


def width(text: str, fontsize: int) -> float:
    return len(text) * CHAR_INCHES.get(fontsize, 0.0085 * fontsize)


def place(labels: Sequence[tuple[float, Sequence[str]]], rows: int, fontsize: int, right: float) -> list[Placed]:
    """``labels``: (x in inches, forms longest first), in any order; ``rows`` rows of text;
    ``right``: where the picture ends. One ``Placed`` per label, in the order given."""
    ends = [float("-inf")] * rows  # where each row's last label ends
    order = sorted(range(len(labels)), key=lambda i: labels[i][0])
    out: dict[int, Placed] = {}
    for k, i in enumerate(order):
        x, forms = labels[i]
        # A label may run up to the next label's start (it could take the same row), and the
        # picture's right edge.
        limit = min((labels[j][0] for j in order[k + 1 :]), default=right)
        chosen = None
        for text in forms:
            for row in range(rows):
                if ends[row] + GAP_INCHES <= x and (x + width(text, fontsize) <= limit or text == forms[-1]) and x + width(text, fontsize) <= right + 0.5:
                    chosen = Placed(text, row, x, x + width(text, fontsize))
                    break
            if chosen is not None:
                break
        if chosen is None:
            chosen = Placed("", 0, x, x)
        else:
            ends[chosen.row] = chosen.end
        out[i] = chosen
    return [out[i] for i in range(len(labels))]
