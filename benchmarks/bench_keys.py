"""The key of a short call: today's estimate against ``music.keys.estimate_phrase_key``.

Each piece's key is what music21 finds for the whole piece (``analyze('key')``, its default
Aarden-Essen weighting, on a stream built from the piece's notes as improv reads them; cached in
the user cache folder, since it takes music21 a while). Every 2-bar call of a piece
(``evaluation.phrases.cut_pairs``: calls and answers, both sides) is a phrase whose key should be
its piece's. The pieces are split by a hash of their names: ``estimate_phrase_key``'s weights were
tuned on one half (``--keys-tune`` repeats that search), its accuracy is measured on the other.

Figures per corpus (``bach``, ``essen``), on the held-out half: ``keys_<corpus>_old`` — the
Krumhansl-Schmuckler estimate the engine uses today (``estimate_key`` of duration-weighted pitch
classes); ``keys_<corpus>_new`` — ``estimate_phrase_key`` as the engine can call it (onsets from
the phrase's first note, the beat known, not the bar); ``..._new_bars`` — the same knowing the bar
lines; ``..._new_profile_only`` — its key profile alone, without the first and last notes;
``..._old_relative`` / ``_parallel`` / ``_fifth`` (and ``new_``) — the share of phrases given the
relative key (same signature, other mode), the parallel key (same tonic, other mode), or a key a
fifth away in the same mode; ``..._phrases`` — how many. ``keys_<corpus>`` is every 2-bar side of
``cut_pairs``; ``keys_<corpus>_opening`` / ``_closing`` each piece's first / last two bars: phrases
that begin or end as a performer's call does.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import os
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from improv.corpus.load import load_corpus
from improv.evaluation.phrases import cut_pairs, estimate_pickup, metric_beat, piece_notes
from improv.music.keys import PhraseKeyWeights, estimate_key, estimate_phrase_key
from improv.music.tokenizer import Tokenizer
from improv.settings.sections import CorpusSettings

SOURCES = {"bach": "music21:bach", "essen": "music21:essenFolksong"}
PROFILE_ONLY = PhraseKeyWeights(0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # the new profile, no other evidence


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keys-pieces", type=int, default=400, metavar="N", help="keys: pieces per corpus and half (default: 400)")
    parser.add_argument("--keys-tune", action="store_true", help="keys: search the phrase estimate's weights on the tuning half and print the best")


def is_tuning(name: str) -> bool:
    """The half of the pieces the weights were tuned on (a stable hash of the name)."""
    return zlib.crc32(name.encode()) % 2 == 0


def cache_file() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "improv" / "bench_keys_music21.json"


def music21_key(notes: np.ndarray) -> tuple[int, bool]:
    """music21's key of a whole piece (its notes as improv reads them)."""
    from music21 import note, stream

    s = stream.Stream()
    for p, start, d in zip(notes["pitch"].tolist(), notes["start"].tolist(), notes["duration"].tolist()):
        n = note.Note(p)
        n.quarterLength = d
        s.insert(start, n)
    key = s.analyze("key")
    return key.tonic.pitchClass, key.mode == "minor"


def phrases(source: str, count: int, tuning: bool) -> list[dict[str, Any]]:
    """The phrases of up to ``count`` pieces of one half of a corpus, each with its piece's key
    (music21's, cached): every 2-bar side of ``cut_pairs`` (``where`` = "bars"), and each piece's
    first and last two bars ("opening", "closing": phrases that begin and end as phrases do)."""
    tok = Tokenizer()
    pieces, _ = load_corpus([source], tok, CorpusSettings(), progress=False)
    chosen = [p for p in pieces if is_tuning(p.name) == tuning][:count]
    path = cache_file()
    cache = json.loads(path.read_text()) if path.exists() else {}
    out = []
    for piece in chosen:
        notes, _ = piece_notes(piece.tokens, tok)
        digest = hashlib.sha1(piece.tokens.tobytes()).hexdigest()[:16]
        if digest not in cache:
            cache[digest] = list(music21_key(notes))
        truth = (int(cache[digest][0]), bool(cache[digest][1]))
        bar, beat = piece.beats_per_bar, metric_beat(piece.meter)
        for pair in cut_pairs(piece.name, piece.tokens, tok, piece.meter, bars=2):
            for side in (pair.call, pair.answer):
                out.append({"notes": side, "beat": beat, "bar": bar, "truth": truth, "where": "bars"})
        pickup = estimate_pickup(notes, bar)
        origin = pickup - bar if pickup > 0 else 0.0  # the first note's bar line
        last_bar = origin + np.floor((notes["start"].max() - origin) / bar + 1e-9) * bar
        for where, at, keep in (("opening", origin, notes["start"] < origin + 2 * bar), ("closing", last_bar - bar, notes["start"] >= last_bar - bar - 1e-9)):
            side = notes[keep].copy()
            side["start"] -= at
            out.append({"notes": side, "beat": beat, "bar": bar, "truth": truth, "where": where})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cache))
    return out


def old_estimate(x: dict[str, Any]) -> tuple[int, bool]:
    weights = np.bincount(x["notes"]["pitch"] % 12, weights=np.maximum(x["notes"]["duration"], 0.05), minlength=12)
    return estimate_key(weights)


def new_estimate(x: dict[str, Any], bars: bool = False, weights: PhraseKeyWeights = PhraseKeyWeights()) -> tuple[int, bool]:
    n = x["notes"]
    if bars:
        return estimate_phrase_key(n["pitch"], n["start"], n["duration"], beat=x["beat"], bar=x["bar"], weights=weights)
    return estimate_phrase_key(n["pitch"], n["start"] - n["start"].min(), n["duration"], beat=1.0, weights=weights)


def confusion(guess: tuple[int, bool], truth: tuple[int, bool]) -> str:
    (g, gm), (t, tm) = guess, truth
    if guess == truth:
        return "right"
    if gm != tm and g == t:
        return "parallel"
    if gm != tm and (g - t) % 12 == (9 if tm is False else 3):
        return "relative"
    if gm == tm and (g - t) % 12 in (5, 7):
        return "fifth"
    return "other"


def accuracy(xs: list[dict[str, Any]], estimate) -> dict[str, float]:
    kinds = [confusion(estimate(x), x["truth"]) for x in xs]
    return {k: kinds.count(k) / len(kinds) for k in ("right", "relative", "parallel", "fifth")}


def objective(xs: list[dict[str, Any]], weights: PhraseKeyWeights, bars: bool = False) -> float:
    """What the weights are tuned for: the mean accuracy on bar-cut, opening and closing phrases (a
    performer's call begins and ends where they begin and end a phrase), the bar unknown, as the
    engine calls it."""
    right = {where: [new_estimate(x, bars, weights) == x["truth"] for x in xs if x["where"] == where] for where in ("bars", "opening", "closing")}
    return float(np.mean([np.mean(r) for r in right.values()]))


def tune(xs: list[dict[str, Any]]) -> tuple[PhraseKeyWeights, float]:
    """The best weights of a small grid on the tuning phrases (``objective``, the bar unknown),
    then the best downbeat accent with the bar known; and the first search's score."""
    grid = {
        "beat_accent": [0.0, 0.5],
        "last_tonic": [0.0, 0.03, 0.06, 0.1],
        "last_triad": [0.0, 0.03, 0.06],
        "first_tonic": [0.0, 0.03, 0.06],
        "first_triad": [0.0, 0.03],
        "lowest_tonic": [0.0, 0.03, 0.06],
    }
    best, best_score = PhraseKeyWeights(), -1.0
    for values in itertools.product(*grid.values()):
        w = PhraseKeyWeights(**dict(zip(grid, values)))
        score = objective(xs, w)
        if score > best_score:
            best, best_score = w, score
    for accent in (0.0, 0.25, 0.5, 1.0):  # the downbeat's extra weight, with the bar lines known
        w = dataclasses.replace(best, bar_accent=accent)
        score = objective(xs, w, bars=True)
        if accent == 0.0 or score > bar_score:
            bar_best, bar_score = w, score
    return bar_best, best_score


def run(args: argparse.Namespace) -> dict[str, float]:
    count = getattr(args, "keys_pieces", 400)
    figures: dict[str, float] = {}
    if getattr(args, "keys_tune", False):
        tuning = [x for source in SOURCES.values() for x in phrases(source, count, tuning=True)]
        best, score = tune(tuning)
        print(f"note: best weights on {len(tuning)} tuning phrases ({score:.3f}): {best}", file=sys.stderr)
        figures["keys_tuning_objective"] = score
    for name, source in SOURCES.items():
        every = phrases(source, count, tuning=False)
        for where in ("bars", "opening", "closing"):
            xs = [x for x in every if x["where"] == where]
            old, new, bars = accuracy(xs, old_estimate), accuracy(xs, new_estimate), accuracy(xs, lambda x: new_estimate(x, True))
            profile = accuracy(xs, lambda x: new_estimate(x, False, PROFILE_ONLY))
            at = f"keys_{name}" if where == "bars" else f"keys_{name}_{where}"
            figures[f"{at}_phrases"] = len(xs)
            figures[f"{at}_old"] = old["right"]
            figures[f"{at}_new"] = new["right"]
            figures[f"{at}_new_bars"] = bars["right"]
            figures[f"{at}_new_profile_only"] = profile["right"]
            if where == "bars":
                for kind in ("relative", "parallel", "fifth"):
                    figures[f"{at}_old_{kind}"] = old[kind]
                    figures[f"{at}_new_{kind}"] = new[kind]
    return figures
