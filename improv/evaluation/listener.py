"""The listener test of `improv eval --duet`: can a classifier tell a system's answers from the
real ones? A measure from outside improv's own figures (which a rule can be tuned to), after the
two-sample classifier test (Lopez-Paz & Oquab 2017): if a classifier trained to tell the two
samples apart does no better than chance on held-out calls, the samples look alike to it.

Each (call, answer) is described by ``FEATURES``, every one relative to the call (an answer is
judged as an answer to *that* call, not as music alone) and none from velocities (the shipped
corpora carry none, so the real answers' velocities would give every system away):

* density: ``density`` log2 of (answer notes + 1) / (call notes + 1); ``onsets`` the same of onsets;
  ``polyphony`` notes per onset, answer minus call.
* pitch: ``distinct_pitches`` distinct pitches per note, answer minus call; ``pitch_classes``
  distinct pitch classes, answer minus call; ``register`` median pitch, answer minus call;
  ``range`` highest minus lowest, answer minus call; ``bass`` and ``top`` the lowest and highest
  pitch, answer minus call; ``in_scale`` the share of the answer's notes in the call's key's scale;
  ``same_key`` the answer's estimated key is the call's; ``new_pitch_classes`` the share of the
  answer's notes whose pitch class the call never played.
* melody (the top line, ``response.top_line``): ``leap`` mean |interval|, answer minus call;
  ``steps`` the share of intervals of at most two semitones, answer minus call.
* imitation: ``rhythm_uptake`` and ``motif_uptake`` (``response``; -1 where undefined);
  ``echo_pitch`` how many of the answer's first top-line notes repeat the call's first ones at
  pitch; ``echo_interval`` how many of its first intervals repeat the call's first ones.
* rhythm: ``ioi`` log2 of the median time between onsets, answer over call; ``ioi_kinds`` distinct
  inter-onset intervals, answer minus call; ``duration`` log2 of the median note length, answer
  over call; ``on_beat`` the share of onsets on a metric beat, answer minus call.
* phrase: ``last_length`` log2 of its last onset's longest note (beats); ``cadence`` it ends on
  a cadence (``response.ends_on_cadence``); ``empty`` it has no note.

Not when the answer starts: a real answer's next bar follows the call at once, while an engine
must hear the silence that ends a call before it answers (it starts on a later beat of the bar,
``serve.answer_grid_beats``). That is the duet's timing, the same for any answering system, not
the answer's music; a feature of it told improv from the real answers every time (AUC 1.0) and
hid everything else.

The classifier is a random forest (scikit-learn, the ``[eval]`` extra); cross-validation is
grouped by call (a call's real answer and the system's answers to it are always in the same fold,
so the classifier never learns a call), and the ROC AUC is taken over the out-of-fold
probabilities: 0.5 is chance (cannot tell), 1.0 always tells. Beside it, each feature's own AUC
for improv against the real answers says what gives improv away.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from improv.errors import ImprovError
from improv.music.keys import scale_pitch_classes
from improv.evaluation.response import (
    Turn,
    ends_on_cadence,
    iois,
    motif_uptake,
    notes_per_onset,
    onset_steps,
    phrase_key,
    rhythm_uptake,
    top_line,
)

FEATURES = (
    "density", "onsets", "polyphony",
    "distinct_pitches", "pitch_classes", "register", "range", "bass", "top", "in_scale", "same_key", "new_pitch_classes",
    "leap", "steps",
    "rhythm_uptake", "motif_uptake", "echo_pitch", "echo_interval",
    "ioi", "ioi_kinds", "duration", "on_beat",
    "last_length", "cadence", "empty",
)  # fmt: skip
FOLDS = 5
TREES = 200


def _common_prefix(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray) -> int:
    n = 0
    for x, y in zip(a, b):
        if int(x) != int(y):
            break
        n += 1
    return n


def echo_length(call: np.ndarray, answer: np.ndarray, steps_per_beat: int) -> int:
    """How many of the answer's first top-line notes repeat the call's first ones at pitch."""
    return _common_prefix(top_line(call, steps_per_beat), top_line(answer, steps_per_beat))


def _line_figures(line: np.ndarray) -> tuple[float, float]:
    steps = np.abs(np.diff(line))
    return (float(steps.mean()), float(np.mean(steps <= 2))) if len(steps) else (0.0, 1.0)


def _phrase(notes: np.ndarray, spb: int, beat: float) -> dict[str, float]:
    pitch = notes["pitch"].astype(np.int64)
    onsets = np.unique(onset_steps(notes, spb))
    gaps = np.diff(onsets)
    beat_steps = max(int(round(beat * spb)), 1)
    return {
        "notes": len(notes),
        "onsets": len(onsets),
        "polyphony": float(notes_per_onset(notes, spb) or 0.0),
        "distinct": len(set(pitch.tolist())) / len(notes),
        "pcs": len(set((pitch % 12).tolist())),
        "median": float(np.median(pitch)),
        "low": int(pitch.min()),
        "high": int(pitch.max()),
        "ioi": float(np.median(gaps)) / spb if len(gaps) else 4.0,
        "ioi_kinds": len(set(gaps.tolist())),
        "duration": float(np.median(notes["duration"])),
        "on_beat": float(np.mean(onsets % beat_steps == 0)),
    }


def features(turn: Turn, steps_per_beat: int) -> np.ndarray:
    """The ``FEATURES`` of one (call, answer), in that order (see the module doc)."""
    call, answer, spb = turn.call, turn.answer, steps_per_beat
    out = dict.fromkeys(FEATURES, 0.0)
    c = _phrase(call, spb, turn.beat)
    out["density"] = np.log2((len(answer) + 1) / (c["notes"] + 1))
    if len(answer) == 0:
        out["onsets"] = np.log2(1 / (c["onsets"] + 1))
        out["rhythm_uptake"] = out["motif_uptake"] = -1.0
        out["empty"] = 1.0
        return np.array([out[f] for f in FEATURES])
    a = _phrase(answer, spb, turn.beat)
    key = turn.call_key if turn.call_key is not None else phrase_key(call, turn.beat, turn.bar)
    pcs = answer["pitch"].astype(np.int64) % 12
    scale = set(scale_pitch_classes(*key)) if key is not None else set()
    call_lines, answer_lines = top_line(call, spb), top_line(answer, spb)
    (c_leap, c_steps), (a_leap, a_steps) = _line_figures(call_lines), _line_figures(answer_lines)
    rhythm, motif = rhythm_uptake(call, answer, spb), motif_uptake(call, answer, spb)
    steps = onset_steps(answer, spb)
    last = steps == steps.max()
    out.update(
        onsets=np.log2((a["onsets"] + 1) / (c["onsets"] + 1)),
        polyphony=a["polyphony"] - c["polyphony"],
        distinct_pitches=a["distinct"] - c["distinct"],
        pitch_classes=a["pcs"] - c["pcs"],
        register=a["median"] - c["median"],
        range=(a["high"] - a["low"]) - (c["high"] - c["low"]),
        bass=a["low"] - c["low"],
        top=a["high"] - c["high"],
        in_scale=float(np.mean([p in scale for p in pcs.tolist()])),
        same_key=float(key is not None and phrase_key(answer, turn.beat, turn.bar) == key),
        new_pitch_classes=float(np.mean(~np.isin(pcs, call["pitch"].astype(np.int64) % 12))),
        leap=a_leap - c_leap,
        steps=a_steps - c_steps,
        rhythm_uptake=-1.0 if rhythm is None else rhythm,
        motif_uptake=-1.0 if motif is None else motif,
        echo_pitch=_common_prefix(call_lines, answer_lines),
        echo_interval=_common_prefix(np.diff(call_lines), np.diff(answer_lines)),
        ioi=np.log2(max(a["ioi"], 1e-3) / max(c["ioi"], 1e-3)),
        ioi_kinds=a["ioi_kinds"] - c["ioi_kinds"],
        duration=np.log2(max(a["duration"], 1e-3) / max(c["duration"], 1e-3)),
        on_beat=a["on_beat"] - c["on_beat"],
        last_length=np.log2(max(float(answer["duration"][last].max()), 1e-3)),
        cadence=float(ends_on_cadence(answer, key, turn.beat, spb)),
    )
    return np.array([out[f] for f in FEATURES], dtype=np.float64)


def feature_matrix(turns: Sequence[Turn], steps_per_beat: int) -> np.ndarray:
    return np.stack([features(t, steps_per_beat) for t in turns]) if turns else np.zeros((0, len(FEATURES)))


def _classifier(seed: int, trees: int) -> Any:
    try:
        from sklearn.ensemble import RandomForestClassifier
    except ImportError as exc:  # the [eval] extra
        raise ImprovError('the listener test needs scikit-learn: pip install "improv[eval]"') from exc
    return RandomForestClassifier(n_estimators=trees, min_samples_leaf=3, class_weight="balanced", random_state=seed, n_jobs=1)


def discriminator_auc(real: np.ndarray, real_groups: Sequence[int], other: np.ndarray, other_groups: Sequence[int], seed: int = 0, trees: int = TREES) -> float | None:
    """ROC AUC of a random forest telling ``other`` (rows of ``FEATURES``) from ``real``, over
    out-of-fold probabilities, folds grouped by call. None with too few calls to fold."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold

    x = np.concatenate([real, other])
    y = np.r_[np.zeros(len(real)), np.ones(len(other))]
    groups = np.r_[np.asarray(real_groups), np.asarray(other_groups)]
    folds = min(FOLDS, len(set(groups.tolist())))
    if folds < 2 or len(real) == 0 or len(other) == 0:
        return None
    scores = np.zeros(len(y))
    for train, test in GroupKFold(n_splits=folds).split(x, y, groups):
        if len(set(y[train].tolist())) < 2:
            return None
        forest = _classifier(seed, trees).fit(x[train], y[train])
        scores[test] = forest.predict_proba(x[test])[:, 1]
    return float(roc_auc_score(y, scores))


def telling_features(real: np.ndarray, other: np.ndarray, top: int = 6) -> list[dict[str, float | str]]:
    """The features that alone tell ``other`` from ``real`` best: each one's own AUC (1 or 0:
    it always tells; 0.5: it never does) and its mean on both sides, most telling first."""
    from sklearn.metrics import roc_auc_score

    if len(real) == 0 or len(other) == 0:
        return []
    y = np.r_[np.zeros(len(real)), np.ones(len(other))]
    rows = []
    for j, name in enumerate(FEATURES):
        values = np.r_[real[:, j], other[:, j]]
        auc = 0.5 if np.ptp(values) == 0 else float(roc_auc_score(y, values))
        rows.append({"feature": name, "auc": auc, "real": float(real[:, j].mean()), "system": float(other[:, j].mean())})
    return sorted(rows, key=lambda r: -abs(r["auc"] - 0.5))[:top]


def listener_test(turns: dict[str, list[Turn]], groups: dict[str, list[int]], steps_per_beat: int, seed: int = 0, trees: int = TREES) -> dict[str, Any]:
    """Every system's ``discriminator_auc`` against ``turns["real"]`` and what tells improv's
    answers from the real ones (``telling_features``). ``groups``: each turn's call index."""
    matrices = {name: feature_matrix(ts, steps_per_beat) for name, ts in turns.items()}
    real = matrices["real"]
    aucs = {name: discriminator_auc(real, groups["real"], m, groups[name], seed, trees) for name, m in matrices.items() if name != "real"}
    return {"discriminator_auc": aucs, "telling_features": telling_features(real, matrices.get("improv", np.zeros((0, len(FEATURES)))))}
