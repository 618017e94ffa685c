"""The outside listener of `improv eval --duet`: a second test that improv is *not* tuned against.

The listener test (``evaluation.listener``) is the figure the rules are tuned on, so it can be
gamed: a rule that moves one of its 25 summary features toward the real answers' mean lowers it
without making the answers any more like real ones. This one is kept beside it as a check, built
differently on purpose:

* **features**: not summaries but histograms of the answer's events, each relative to the call
  (``FEATURES_OUTSIDE``): the top line's intervals (-12..12 semitones, wider clipped), every
  note's pitch relative to the call's median (3-semitone bins, -24..24), its pitch class relative
  to the call's key tonic (12 bins; the call's lowest pitch class when it has no key), the time
  between onsets and the notes' lengths in beats (log2 bins, 1/12..4), notes per onset (1..4+),
  and the log ratio of note counts. Each histogram sums to 1, so it reads the answer's shape,
  not its length.
* **model**: a linear one (``two_sample``'s L2 logistic regression, numpy), not a forest.
* **folds**: grouped by call, as the listener's.

Nothing in improv reads these figures; a change that lowers the listener AUC and not this one has
moved a feature, not the music.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from improv.evaluation.response import Turn, onset_steps, phrase_key, top_line
from improv.evaluation.two_sample import classifier_auc

INTERVAL_BINS = np.arange(-12.5, 13.5, 1.0)  # 25 bins, one a semitone
PITCH_BINS = np.arange(-25.5, 26.5, 3.0)  # 17 bins of 3 semitones
TIME_BINS = np.log2([1 / 12, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 1, 1.5, 2, 3, 4, 64]) - 1e-9  # log2 beats
VOICE_BINS = np.array([0.5, 1.5, 2.5, 3.5, 99.0])


def _histogram(values: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Share of ``values`` in each bin, the outermost bins taking what lies beyond them."""
    if len(values) == 0:
        return np.zeros(len(bins) - 1)
    clipped = np.clip(values, bins[0] + 1e-9, bins[-1] - 1e-9)
    counts, _ = np.histogram(clipped, bins)
    return counts / len(values)


def outside_features(turn: Turn, steps_per_beat: int) -> np.ndarray:
    """One (call, answer) as the histograms of the module doc, concatenated."""
    call, answer, spb = turn.call, turn.answer, steps_per_beat
    centre = float(np.median(call["pitch"])) if len(call) else 60.0
    key = turn.call_key if turn.call_key is not None else phrase_key(call, turn.beat, turn.bar)
    tonic = key[0] if key is not None else (int(call["pitch"].min()) % 12 if len(call) else 0)
    pitch = answer["pitch"].astype(np.float64)
    steps = onset_steps(answer, spb) if len(answer) else np.zeros(0, dtype=np.int64)
    onsets, per_onset = np.unique(steps, return_counts=True)
    ioi = np.diff(onsets) / spb
    parts = [
        _histogram(np.diff(top_line(answer, spb)).astype(np.float64), INTERVAL_BINS),
        _histogram(pitch - centre, PITCH_BINS),
        _histogram(((answer["pitch"].astype(np.int64) - tonic) % 12).astype(np.float64), np.arange(-0.5, 12.5, 1.0)),
        _histogram(np.log2(np.maximum(ioi, 1e-3)), TIME_BINS),
        _histogram(np.log2(np.maximum(np.asarray(answer["duration"], dtype=np.float64), 1e-3)), TIME_BINS),
        _histogram(per_onset.astype(np.float64), VOICE_BINS),
        np.array([np.log2((len(answer) + 1) / (len(call) + 1))]),
    ]
    return np.concatenate(parts)


def outside_auc(turns: dict[str, list[Turn]], steps_per_beat: int) -> dict[str, Any]:
    """Each system's ``outside_auc`` against ``turns["real"]`` (None with under two calls)."""
    matrices = {name: np.stack([outside_features(t, steps_per_beat) for t in ts]) for name, ts in turns.items() if ts}
    if "real" not in matrices:
        return {}
    real = matrices["real"]
    real_groups = [t.index for t in turns["real"]]
    out: dict[str, Any] = {}
    for name, other in matrices.items():
        if name == "real":
            continue
        groups = np.r_[real_groups, [t.index for t in turns[name]]]
        if len(set(groups.tolist())) < 2:
            out[name] = None
            continue
        x = np.concatenate([real, other])
        y = np.r_[np.zeros(len(real)), np.ones(len(other))]
        value = classifier_auc(x, y, groups, folds=5)
        out[name] = None if np.isnan(value) else float(value)
    return out

