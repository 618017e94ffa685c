"""Where answers end (issue #19): the last onset of each real answer and of improv's, on
`improv eval --duet`'s own pairs and seeds (``pairs_of``, ``playable_call``, ``engine_answer``
with the voice's name, ``listener``'s classifier, ``outside_auc``): improv's column of the eval
for each ``--ending-set`` variant, so a rule can be judged on and off in one run. (README, #19's
seventh pass: an ending rule tried with it, not kept.)

The ending, read against the call's key (``phrase_key``): the last onset's top note is the
``tonic``, another tonic-triad tone (``triad``: the third or the fifth) or ``other``; and whether
that onset lies on a metric beat (``on_beat``). Shares over the answers that have a note.

``--ending-train-pairs N`` reads the same of N pairs cut from the voice's training pieces: where a
voice's answers end, as a fact of the voice, not of the held-out pairs a rule is judged on.

Needs torch (the voice's training record) and scikit-learn. Figures: ``real_*`` and, for each
variant, ``<name>_*``: ``end_tonic`` / ``end_triad`` / ``end_other``, ``end_on_beat``,
``end_tonic_on_beat`` (tonic-triad top on a beat, over the answers ending on a beat); and for the
variants ``auc``, ``outside_auc``, ``rhythm_ratio`` / ``motif_ratio`` / ``cadence_ratio`` (over
the real answers'), ``telling`` (the listener's top features).
"""

from __future__ import annotations

import argparse
from typing import Any, Sequence

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ending-voice", default="folk", help="the shipped voice (default: folk)")
    parser.add_argument("--ending-pairs", type=int, default=60, help="phrase pairs at most (default: 60, as the eval; 0: only the training pairs' endings)")
    parser.add_argument("--ending-seed", type=int, default=0, help="the answers' seed (default: 0)")
    parser.add_argument("--ending-train-pairs", type=int, default=0, help="also the endings of this many pairs of the voice's training pieces, as ``train_*`` (where the voice's own answers end; default: 0, none)")
    parser.add_argument("--ending-set", action="append", default=[], metavar="NAME:SECTION.KEY=VALUE[;...]", help="a variant of improv's settings, named (repeatable; default: the config's, as 'default')")


def endings(turns: Sequence[Any], steps_per_beat: int) -> dict[str, float]:
    """The shares of ``turns``' answers ending on the tonic, the triad or elsewhere, on a beat."""
    from improv.evaluation.response import onset_steps, top_line
    from improv.music.keys import tonic_triad_pitch_classes

    counts = np.zeros(5)  # tonic, triad, other, on a beat, tonic triad on a beat
    for t in turns:
        if len(t.answer) == 0 or t.call_key is None:
            continue
        tonic, minor = t.call_key
        last = int(top_line(t.answer, steps_per_beat)[-1]) % 12
        kind = 0 if last == tonic % 12 else 1 if last in tonic_triad_pitch_classes(tonic, minor) else 2
        counts[kind] += 1
        beat = onset_steps(t.answer, steps_per_beat).max() % max(int(round(t.beat * steps_per_beat)), 1) == 0
        counts[3] += beat
        counts[4] += beat and kind < 2
    n = max(counts[:3].sum(), 1)
    return {
        "end_tonic": float(counts[0] / n),
        "end_triad": float(counts[1] / n),
        "end_other": float(counts[2] / n),
        "end_on_beat": float(counts[3] / n),
        "end_tonic_on_beat": float(counts[4] / max(counts[3], 1)),
    }


def run(args: Any) -> dict[str, Any]:
    from _duet_column import duet_pairs, improv_turns
    from improv.evaluation.duet import pairs_of
    from improv.evaluation.listener import discriminator_auc, feature_matrix, telling_features
    from improv.evaluation.outside import outside_auc
    from improv.evaluation.response import Turn, phrase_key, summarize

    seed = args.ending_seed
    duet = duet_pairs(args.ending_voice, max(args.ending_pairs, 1))
    spb = duet.tokenizer.steps_per_beat
    real = duet.real
    out: dict[str, Any] = {"pairs": len(real), **{f"real_{k}": v for k, v in endings(real, spb).items()}}
    if args.ending_train_pairs > 0:  # the voice's fact, from its training pieces (never the held-out ones)
        facts = pairs_of(duet.train, duet.tokenizer, 2, args.ending_train_pairs)
        out["train_pairs"] = len(facts)
        out.update({f"train_{k}": v for k, v in endings([Turn(p.call, p.answer, p.beat, p.bar, phrase_key(p.call, p.beat, p.bar), i) for i, p in enumerate(facts)], spb).items()})
    variants = [v.split(":", 1) for v in args.ending_set] or [["default", ""]]
    r, s_real = feature_matrix(real, spb), summarize(real, spb)
    for name, sets in variants if args.ending_pairs > 0 else []:
        improv = improv_turns(duet, [s for s in sets.split(";") if s], seed)
        m, s = feature_matrix(improv, spb), summarize(improv, spb)
        out[f"{name}_auc"] = discriminator_auc(r, [t.index for t in real], m, [t.index for t in improv], seed)
        out[f"{name}_outside_auc"] = outside_auc({"real": real, "improv": improv}, spb).get("improv")
        for figure in ("rhythm_uptake", "motif_uptake", "cadence_rate"):
            out[f"{name}_{figure.split('_')[0]}_ratio"] = float(s[figure] / s_real[figure]) if s_real[figure] else None
        out.update({f"{name}_{k}": v for k, v in endings(improv, spb).items()})
        out[f"{name}_telling"] = {t["feature"]: f"{t['auc']:.2f}: {t['real']:.2f} -> {t['system']:.2f}" for t in telling_features(r, m, 6)}
    return out
