"""A two-sample classifier test: can a plain classifier tell two sets of feature vectors apart?

Logistic regression (numpy, L2, gradient descent on standardised features) trained on some groups
and scored on the others (folds by group: a piece's windows never sit on both sides), and the
area under the ROC curve of its held-out scores: 0.5 = indistinguishable, 1.0 = always told apart.
"""

from __future__ import annotations

import numpy as np


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney: the chance that a random positive scores above a random negative (ties half)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    values = np.concatenate([pos, neg])[order]
    i = 0
    while i < len(values):  # average ranks over ties
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, steps: int = 500, lr: float = 0.1) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = (x - mean) / std
    w, b = np.zeros(z.shape[1]), 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(z @ w + b)))
        w -= lr * (z.T @ (p - y) / len(y) + l2 * w / len(y))
        b -= lr * float(np.mean(p - y))
    return w, b, mean, std


def classifier_auc(x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int = 4) -> float:
    """Held-out AUC of a logistic regression telling ``y == 1`` from ``y == 0``, folds by group."""
    names = np.unique(groups)
    scores = np.full(len(y), np.nan)
    for k in range(min(folds, len(names))):
        test = np.isin(groups, names[k::folds])
        if test.all() or not test.any():
            continue
        w, b, mean, std = fit_logistic(x[~test], y[~test])
        scores[test] = ((x[test] - mean) / std) @ w + b
    keep = ~np.isnan(scores)
    return auc(scores[keep], y[keep])
