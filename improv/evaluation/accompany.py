"""``improv eval --accompany``: Bach chorale sopranos played into the engine (``serve.mode:
accompany``) at a fixed tempo in simulated time; what improv plays under them is scored against
the chorale's own alto, tenor and bass, and against the rule baseline (the key's tonic triad per bar).

- ``harmony_ratio``: the share of accompaniment note-time consonant with the melody note sounding
  (unison, third, fifth, sixth, octave above it, mod 12: as ReaLchords counts it).
- ``grid_ms``: accompaniment onsets against the performer's beat (median, p90). In simulated time
  this checks the plan; the JACK test measures the real sends.
- ``anticipation_ms``: how long before its beat each note was decided (min, median): > 0 always.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import mido
import numpy as np

from improv.errors import ImprovError
from improv.evaluation.drive import drive
from improv.realtime.accompanist import consonant
from improv.realtime.notes import LiveNote

Note3 = tuple[float, float, int]  # (onset s, end s, pitch)


def chorales(count: int, skip: int = 0) -> list[tuple[str, list[Note3], list[Note3], int]]:
    """``count`` four-part chorales from music21's corpus (every 7th from ``skip``: a spread, the
    same every run): (name, soprano, alto+tenor+bass, beats per bar), times in beats."""
    from music21 import corpus  # heavy: only here

    out = []
    paths = sorted(corpus.getComposer("bach"), key=lambda p: p.name)
    for path in paths[skip::7]:
        if len(out) >= count:
            break
        try:
            score = corpus.parse(path)
        except Exception:  # a file music21 cannot read is skipped, as the corpus loader does
            continue
        parts = {p.partName: p for p in score.parts}
        if not all(n in parts for n in ("Soprano", "Alto", "Tenor", "Bass")):
            continue

        def notes(part: Any) -> list[Note3]:
            got = []
            for n in part.flatten().notes:
                for p in getattr(n, "pitches", ()):
                    got.append((float(n.offset), float(n.offset + n.quarterLength), int(p.midi)))
            return got

        ts = score.recurse().getElementsByClass("TimeSignature")
        bar = int(ts[0].barDuration.quarterLength) if ts else 4
        below = notes(parts["Alto"]) + notes(parts["Tenor"]) + notes(parts["Bass"])
        out.append((path.stem, notes(parts["Soprano"]), below, max(1, bar)))
    return out


def harmony_ratio(under: Sequence[Note3], melody: Sequence[Note3]) -> float:
    """The share of ``under``'s note-time, while a melody note sounds, consonant with that note."""
    good = total = 0.0
    mel = sorted(melody)
    for a0, a1, ap in under:
        for m0, m1, mp in mel:
            if m0 >= a1:
                break
            overlap = min(a1, m1) - max(a0, m0)
            if overlap > 0:
                total += overlap
                good += overlap * consonant(mp, ap)
    return good / total if total else math.nan


def window_features(under: Sequence[Note3], melody: Sequence[Note3], bar: int) -> list[np.ndarray]:
    """One vector per bar of ``under`` (times in beats): the note-time share of each interval
    class below the sounding melody note (12), onsets per beat, notes sounding at once, the mean
    distance below the melody in octaves, the share of onsets on a beat, the range in octaves."""
    out = []
    end = max((b for _, b, _ in melody), default=0.0)
    for start in np.arange(0.0, end, bar):
        stop = start + bar
        notes = [(a, b, p) for a, b, p in under if a < stop and b > start]
        onsets = [a for a, _, _ in notes if a >= start]
        if len(onsets) < 2:
            continue
        hist = np.zeros(12)
        below = []
        for a0, a1, ap in notes:
            for m0, m1, mp in melody:
                overlap = min(a1, m1, stop) - max(a0, m0, start)
                if overlap > 0:
                    hist[(mp - ap) % 12] += overlap
                    below.append(mp - ap)
        time = sum(min(b, stop) - max(a, start) for a, b, _ in notes)
        pitches = [p for _, _, p in notes]
        extra = [len(onsets) / bar, time / bar, (np.mean(below) if below else 0.0) / 12,
                 np.mean([abs(a - round(a)) < 1e-3 for a in onsets]), (max(pitches) - min(pitches)) / 12]
        out.append(np.concatenate([hist / max(hist.sum(), 1e-9), extra]))
    return out


def play_along(model: Any, settings: Any, soprano: Sequence[Note3], bpm: float, seed: int = 0, recorder: Any = None) -> tuple[list[Note3], list[tuple[LiveNote, float]]]:
    """The soprano (times in beats) played into an accompanying engine at ``bpm``, starting at 1 s:
    improv's notes (onset, end, pitch in beats) and as sent (seconds), each with when it was decided."""
    from improv.realtime.engine import Engine

    beat = 60 / bpm
    start = 1.0
    s = dataclasses.replace(settings, mode="accompany", bpm=bpm, estimate_tempo=False)
    engine = Engine(model, s, seed=seed, recorder=recorder)
    script: list[tuple[float, mido.Message]] = []
    for b0, b1, p in soprano:
        script.append((start + b0 * beat, mido.Message("note_on", note=p, velocity=80)))
        script.append((start + b1 * beat - 0.02, mido.Message("note_off", note=p, velocity=0)))  # a breath between repeated notes
    script.sort(key=lambda tm: (tm[0], tm[1].type == "note_on"))
    end = max(t for t, _ in script)
    drive(engine, script, end + 8 * beat, run_to_until=True)
    engine.shutdown(end + 8 * beat)
    played = list(engine._band.played)
    notes = [((n.onset - start) / beat, (n.end - start) / beat, n.pitch) for n, _ in played]
    return notes, played


def evaluate_accompaniment(model: Any, settings: Any, count: int = 12, bpm: float = 80.0, log: Callable[[str], None] | None = None, recorder: Any = None) -> dict[str, Any]:
    """The figures of the module docstring over ``count`` held-out chorales; ``recorder`` (a
    ``realtime.report.Recorder``) gets the first one's session: soprano and accompaniment."""
    pieces = chorales(count, skip=3)
    if not pieces:
        raise ImprovError("no four-part chorales could be read from music21's corpus")
    real, ours, base, grid, ahead = [], [], [], [], []
    windows: list[tuple[np.ndarray, int, int]] = []  # (features, 1 = improv's, piece)
    for name, soprano, below, bar in pieces:
        s = dataclasses.replace(settings, bar_beats=bar)
        notes, played = play_along(model, s, soprano, bpm, recorder=recorder if not real else None)
        tonic, _ = play_along(model, dataclasses.replace(s, accompanist="tonic"), soprano, bpm)
        windows += [(f, 0, len(real)) for f in window_features(below, soprano, bar)]
        windows += [(f, 1, len(real)) for f in window_features(notes, soprano, bar)]
        real.append(harmony_ratio(below, soprano))
        ours.append(harmony_ratio(notes, soprano))
        base.append(harmony_ratio(tonic, soprano))
        beat = 60 / bpm
        grid += [abs((n.onset - 1.0) / beat - round((n.onset - 1.0) / beat)) * beat * 1000 for n, _ in played]
        ahead += [(n.onset - decided) * 1000 for n, decided in played]
        if log is not None:
            log(f"{name}: harmony {ours[-1]:.3f} (real {real[-1]:.3f}, tonic triad {base[-1]:.3f}), {len(played)} notes")
    r, o, b = (float(np.nanmean(x)) for x in (real, ours, base))
    from improv.evaluation.two_sample import classifier_auc

    x = np.array([w for w, _, _ in windows])
    label = np.array([y for _, y, _ in windows])
    group = np.array([g for _, _, g in windows])
    feats = x[:, :12]  # the harmony alone: which intervals sound under the melody
    return {
        "pieces": len(pieces),
        "bpm": bpm,
        "harmony_ratio": round(o, 4),
        "harmony_ratio_real": round(r, 4),
        "harmony_ratio_tonic_baseline": round(b, 4),
        "harmony_vs_real": round(o / r, 4),
        "grid_ms_median": round(float(np.median(grid)), 3) if grid else None,
        "grid_ms_p90": round(float(np.percentile(grid, 90)), 3) if grid else None,
        "anticipation_ms_min": round(float(min(ahead)), 3) if ahead else None,
        "anticipation_ms_median": round(float(np.median(ahead)), 3) if ahead else None,
        "notes": len(ahead),
        # Told apart from the real alto/tenor/bass bar by bar (0.5 = not at all): on every feature,
        # and on the intervals under the melody alone (the harmony, not the block-chord texture).
        "classifier_auc": round(classifier_auc(x, label, group), 3) if len(windows) > 8 else None,
        "classifier_auc_harmony": round(classifier_auc(feats, label, group), 3) if len(windows) > 8 else None,
    }


def format_accompany_table(r: dict[str, Any]) -> str:
    return "\n".join([
        f"accompaniment of {r['pieces']} held-out Bach chorale sopranos at {r['bpm']:g} bpm ({r['notes']} notes)",
        "",
        "| | harmony_ratio |",
        "|---|---|",
        f"| improv (serve.accompanist: harmony) | {r['harmony_ratio']:.3f} ({r['harmony_vs_real']:.2f}x the real) |",
        f"| the chorales' alto, tenor, bass | {r['harmony_ratio_real']:.3f} |",
        f"| rule baseline: the key's tonic triad per bar | {r['harmony_ratio_tonic_baseline']:.3f} |",
        "",
        f"grid (planned onsets vs the performer's beat): median {r['grid_ms_median']} ms, p90 {r['grid_ms_p90']} ms",
        f"decided ahead of its beat: min {r['anticipation_ms_min']} ms, median {r['anticipation_ms_median']} ms",
        f"a classifier telling it from the real alto/tenor/bass, bar by bar (0.5 = cannot): AUC {r['classifier_auc']} on every feature, {r['classifier_auc_harmony']} on the intervals alone",
    ])
