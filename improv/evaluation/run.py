"""`improv eval`: numbers for how good a model is. Metrics are pure functions; ``run_eval`` is the shell.

What is measured, on the pieces the checkpoint held out (or ``--data``):

* ``heldout_nll`` — mean negative log-likelihood per event in nats, the sum of the four heads, each
  piece scored from a zero state at BOS through EOS (every event after BOS, EOS included, is a
  target — exactly the training loss). ``heldout_nll_pitch`` / ``_offset`` / ``_duration`` /
  ``_velocity`` split it by head (flat keys, so two runs' JSON compare key by key).
* ``markov_nll`` / ``unigram_nll`` (same breakdown) — the baselines of ``evaluation.baselines``, fitted on
  the checkpoint's training pieces, scored on the same events.
* ``collapse_rate`` — share of generated events inside a run of >= 8 identical consecutive events
  (identical rows: pitch, offset, duration and velocity): the seeds' argmax failure.
* ``longest_copy`` — median over generated samples of the longest run of consecutive events found
  verbatim (all four fields) inside one training piece. ``corpus_longest_copy`` — the same for the
  held-out real excerpts: how much real music shares with the training set, the yardstick.
* ``pitch_class_overlap`` / ``note_length_overlap`` / ``ioi_overlap`` — Yang & Lerch's MGEval
  (2018) relative measure: per-piece features; intra-set distances of the real excerpts (each to
  every other) and inter-set distances (each generated to each real); a Gaussian KDE of each set of
  distances; the area under the smaller of the two densities. 1 = generated music sits among the
  real pieces as they sit among themselves.

Choices, and why:

* Samples start from BOS, not from held-out beginnings: priming with real music would lend the
  samples the held-out pieces' key and rhythm, so the overlaps would measure the prompt as much as
  the model, and this is what `improv generate` does without a prompt. The sampling settings are
  the user's (``sample`` section), so eval measures the music the user will get.
* Real excerpts are the first ``eval.sample_length`` events of each held-out piece: the same length
  and the same place (a piece's beginning) as the samples, so histograms are equally noisy on both
  sides and the copy lengths are comparable.
* Features (MGEval's, on our notes, times in beats): pitch-class histogram weighted by duration (as
  MGEval's piano-roll sum); note-length histogram over MGEval's 12 classes (whole, half, quarter,
  8th, 16th, their dotted forms, and half/quarter/8th triplets; each note to the nearest class);
  mean inter-onset interval between distinct onsets (a chord is one onset). Distances are Euclidean.
* The KDE uses Scott's bandwidth (as scipy's ``gaussian_kde``, which MGEval calls) and is
  integrated over the whole line instead of MGEval's [min, max] of the data, so identical sets
  give exactly 1. Computed on a grid with FFT convolution: fast for any number of distances.
* The copy search hashes windows with two 31-bit prime moduli (a 62-bit key; no ``2**64`` wrap,
  which long Thue-Morse-like sequences break) and binary-searches the run length per sample; each
  probe is one vectorised pass over the training text, O(N log m) for N training events and m
  query events, so a million-event corpus takes seconds.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

import numpy as np

from improv.errors import ImprovError
from improv.evaluation.baselines import MarkovModel, UnigramModel, per_field_dict
from improv.evaluation.metrics import (
    COLLAPSE_RUN,
    FEATURES,
    CopyIndex,
    collapse_rate,
    excerpt,
    feature_overlaps,
    note_codes,
)
from improv.music.tokenizer import Tokenizer


class EvalError(ImprovError):
    """Nothing to evaluate on, or a checkpoint without the record eval needs."""


def model_nll(ckpt: Any, pieces: Sequence[np.ndarray]) -> tuple[np.ndarray, int]:
    """``nll.heldout_nll`` of the checkpoint's network, with torch threads following training's
    rule for the call (``machine.default_threads``: a thread per core thrashes on a loaded machine)."""
    import torch

    from improv.evaluation.nll import heldout_nll
    from improv.io.machine import default_threads

    threads = torch.get_num_threads()
    torch.set_num_threads(default_threads())
    try:
        return heldout_nll(ckpt.build_model(), pieces)
    finally:
        torch.set_num_threads(threads)


def generate_samples(step_model: Any, params: Any, count: int, length: int, seed: int) -> list[np.ndarray]:
    """``count`` pieces from BOS (up to ``length`` events each), one seeded stream for all."""
    from improv.generation.compose import sample_rows

    rng = np.random.default_rng(seed)
    return [sample_rows(step_model, rng, params, length).rows for _ in range(count)]


def evaluate(ckpt: Any, heldout: Sequence[np.ndarray], train: Sequence[np.ndarray], params: Any, samples: int, sample_length: int, markov_order: int, seed: int = 0, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """All metrics of one checkpoint, as one flat dict (see the module doc for each key)."""
    log = log or (lambda message: None)
    tok: Tokenizer = ckpt.tokenizer
    started = time.perf_counter()
    out: dict[str, Any] = {
        "heldout_pieces": len(heldout),
        "heldout_events": int(sum(max(len(p) - 1, 0) for p in heldout)),
        "train_pieces": len(train),
        "train_events": int(sum(max(len(p) - 1, 0) for p in train)),
    }
    log(f"scoring {out['heldout_events']} held-out events with the model")
    total, n = model_nll(ckpt, heldout)
    out.update(per_field_dict(total, n, "heldout_nll"))
    log(f"fitting the order-{markov_order} Markov and unigram baselines on {out['train_events']} events")
    markov = MarkovModel(markov_order, tok.sizes).fit(train)
    out.update(per_field_dict(*markov.nll(heldout), "markov_nll"))
    out.update(per_field_dict(*UnigramModel(tok.sizes).fit(train).nll(heldout), "unigram_nll"))

    log(f"generating {samples} samples of up to {sample_length} events")
    generated = generate_samples(ckpt.step_model(), params, samples, sample_length, seed)
    real = [excerpt(p, sample_length) for p in heldout]
    out["collapse_rate"] = collapse_rate(generated)
    log("searching the training pieces for copied runs")
    index = CopyIndex([note_codes(p, tok) for p in train])
    out["longest_copy"] = float(np.median(index.longest([note_codes(g, tok) for g in generated])))
    out["corpus_longest_copy"] = float(np.median(index.longest([note_codes(r, tok) for r in real])))
    out.update(feature_overlaps([tok.decode(g) for g in generated], [tok.decode(r) for r in real]))
    lengths = [len(g) for g in generated]
    out.update(
        {
            "samples": samples,
            "sample_length": sample_length,
            "sample_events_mean": float(np.mean(lengths)) if lengths else 0.0,
            "markov_order": markov_order,
            "temperature": params.temperature,
            "top_k": params.top_k,
            "top_p": params.top_p,
            "seed": seed,
            "seconds": round(time.perf_counter() - started, 2),
        }
    )
    return out


def select_pieces(pieces: Sequence[Any], names: Sequence[str], what: str, log: Callable[[str], None] | None = None) -> list[Any]:
    """The pieces named, in the corpus's order; none found is an error naming ``what``."""
    wanted = set(names)
    found = [p for p in pieces if p.name in wanted]
    if wanted and not found:
        raise EvalError(f"none of the checkpoint's {len(wanted)} {what} pieces are in its training data any more (pass --data)")
    if log and len(found) < len(wanted):
        log(f"{len(wanted) - len(found)} of the checkpoint's {len(wanted)} {what} pieces are no longer in its data; using the rest")
    return found


def load_pieces(checkpoint: str, data: Sequence[str] | None, settings: Any, log: Callable[[str], None] | None = None) -> tuple[Any, dict[str, Any], list[Any], list[Any]]:
    """What `improv eval` (plain and ``--duet``) measures a checkpoint with: the checkpoint, its
    training record, its training pieces (for the baselines), and its held-out pieces or ``data``."""
    from improv.corpus.load import load_corpus
    from improv.model.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    record = ckpt.train
    if not record.get("data") or not (record.get("train_pieces") or record.get("heldout")):
        raise EvalError(f"{checkpoint} holds no training record (data, train_pieces): evaluate a checkpoint written by `improv train`")
    corpus, _ = load_corpus(list(record["data"]), ckpt.tokenizer, settings.corpus)
    if record.get("train_pieces"):
        train = select_pieces(corpus, record["train_pieces"], "training", log)
    else:
        # A .npz (all a wheel ships) names its held-out pieces only; training took the rest of its
        # data (the pieces training can use: 3 events or more).
        held = set(record["heldout"])
        train = [p for p in corpus if p.name not in held and len(p.tokens) >= 3]
    if data:
        heldout, _ = load_corpus(list(data), ckpt.tokenizer, settings.corpus)
        if not heldout:
            raise EvalError(f"no pieces could be read from --data {' '.join(data)}")
    else:
        if not record.get("heldout"):
            raise EvalError(f"{checkpoint} held out no pieces ({_why_no_heldout(record)}): pass --data FILES to evaluate on")
        heldout = select_pieces(corpus, record["heldout"], "held-out", log)
    return ckpt, record, train, heldout


def run_eval(checkpoint: str, data: Sequence[str] | None, samples: int, seed: int, settings: Any, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The shell of `improv eval`: load the checkpoint and the pieces, then ``evaluate``."""
    from improv.model.sampling import SamplingParams

    ckpt, record, train, heldout = load_pieces(checkpoint, data, settings, log)
    params = SamplingParams.from_settings(settings.sample)
    result = evaluate(ckpt, [p.tokens for p in heldout], [p.tokens for p in train], params, samples, settings.eval.sample_length, settings.eval.markov_order, seed, log)
    result["targets_met"] = targets_met(result)
    result["verdict"] = verdict(result["targets_met"])
    return {"checkpoint": checkpoint, "data": list(data) if data else list(record["data"]), **result}


def _why_no_heldout(record: dict[str, Any]) -> str:
    """Why a training run held nothing out, from its record."""
    fraction = record.get("settings", {}).get("val_fraction")
    if fraction == 0:
        return "it was trained with train.val_fraction = 0"
    if len(record.get("train_pieces", [])) < 2:
        return "it was trained on a single piece, which is never held out"
    return "its training record names none"


def format_table(result: dict[str, Any]) -> str:
    """The human-readable report of ``run_eval``, ending with its verdict against the quality bar."""
    met = targets_met(result)
    k = result.get("markov_order", "k")
    lines = [
        f"{result.get('checkpoint', '')}: {result['heldout_pieces']} held-out pieces ({result['heldout_events']} events); "
        f"baselines fitted on {result['train_pieces']} training pieces ({result['train_events']} events)",
        "",
        f"{'NLL per event (nats)':<24}{'model':>10}{f'markov-{k}':>12}{'unigram':>10}",
    ]
    for suffix, label in [("", "all four heads")] + [(f"_{f}", f"  {f}") for f in ("offset", "pitch", "duration", "velocity")]:
        target = f"   target: below markov-{k}{_met(met, 'heldout_nll')}" if not suffix else ""
        lines.append(f"{label:<24}{result['heldout_nll' + suffix]:>10.3f}{result['markov_nll' + suffix]:>12.3f}{result['unigram_nll' + suffix]:>10.3f}{target}")
    top = f", top-k {result['top_k']}" if result.get("top_k") else ""
    lines += [
        "",
        f"{result['samples']} samples from BOS, up to {result['sample_length']} events (mean {result['sample_events_mean']:.0f}); "
        f"temperature {result['temperature']:g}{top}, top-p {result['top_p']:g}, seed {result['seed']}",
        f"{'collapse_rate':<24}{100 * result['collapse_rate']:>9.2f}%   share of events in runs of >= {COLLAPSE_RUN} identical events (target < 2%){_met(met, 'collapse_rate')}",
        f"{'longest_copy':<24}{result['longest_copy']:>10g}   median longest run found verbatim in training pieces (target: <= corpus_longest_copy){_met(met, 'longest_copy')}",
        f"{'corpus_longest_copy':<24}{result['corpus_longest_copy']:>10g}   the same for held-out real music (the yardstick)",
    ]
    for name in FEATURES:
        key = f"{name}_overlap"
        value = result[key]
        known = value is not None and math.isfinite(value)
        target = "target >= 0.8" if key in QUALITY_BAR else "no target"
        why = f"MGEval overlap with held-out music ({target})" if known else "needs at least 2 real pieces to compare with"
        lines.append(f"{key:<24}{f'{value:.3f}' if known else 'n/a':>10}   {why}{_met(met, key)}")
    lines += ["", verdict(met)]
    return "\n".join(lines)


# The quality bar a model is judged by (README: "Each voice against the quality bar"): more learnt
# than which notes follow which, no collapse, no more copying than real music shows, and music that
# sounds like the held-out music (pitch classes, note lengths). ioi_overlap is shown, not judged:
# unprimed samples of polyphony move in longer values than real pieces' mean onset gap.
QUALITY_BAR: dict[str, tuple[str, str, Callable[[float, float], bool]]] = {
    "heldout_nll": ("heldout_nll", "markov_nll", lambda model, markov: model < markov),
    "collapse_rate": ("collapse_rate", "collapse_rate", lambda rate, _: rate < 0.02),
    "longest_copy": ("longest_copy", "corpus_longest_copy", lambda copy, corpus: copy <= corpus),
    "pitch_class_overlap": ("pitch_class_overlap", "pitch_class_overlap", lambda overlap, _: overlap >= 0.8),
    "note_length_overlap": ("note_length_overlap", "note_length_overlap", lambda overlap, _: overlap >= 0.8),
}


def targets_met(result: dict[str, Any]) -> dict[str, bool | None]:
    """Each target of the quality bar (its figure, what it is compared with, the rule): met, not
    met, or None where a figure is unknown (n/a: too few pieces)."""
    out: dict[str, bool | None] = {}
    for key, (figure, other, rule) in QUALITY_BAR.items():
        a, b = result.get(figure), result.get(other)
        known = all(v is not None and math.isfinite(v) for v in (a, b))
        out[key] = bool(rule(a, b)) if known else None
    return out


def verdict(met: dict[str, bool | None]) -> str:
    """One line: whether the model meets the quality bar, and where it misses."""
    judged = {k: v for k, v in met.items() if v is not None}
    missed = [k for k, v in judged.items() if not v]
    unknown = [k for k, v in met.items() if v is None]
    tail = f"; not judged (too few pieces): {', '.join(unknown)}" if unknown else ""
    if missed:
        return f"verdict: below the quality bar: {', '.join(missed)} ({len(judged) - len(missed)} of {len(met)} targets met){tail}"
    return f"verdict: meets the quality bar ({len(judged)} of {len(met)} targets met){tail}"


def _met(met: dict[str, bool | None], key: str) -> str:
    return {True: " (met)", False: " (NOT met)", None: ""}[met.get(key)] if key in met else ""
