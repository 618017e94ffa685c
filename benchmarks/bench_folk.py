"""The listener test on more pairs than `improv eval --duet --pairs 60` draws, for one voice:
improv's and the Markov continuator's ``discriminator_auc`` against the real answers, with
``evaluate_duet``'s own pieces (``pairs_of``, ``engine_answer``, ``markov_answer``,
``listener_test``'s classifier, ``outside_auc``), and, beside it, the real answers' register
against their calls over many held-out pairs: the check that a telling feature of one sample of
pairs ("its top line sits low") is the corpus's and not the sample's.

Needs torch (the voice's training record) and scikit-learn; a few minutes at ``--folk-pairs 200``.
Figures: ``pairs``; ``improv_auc``, ``markov_auc``, ``improv_outside_auc``; improv's
``rhythm_ratio``, ``motif_ratio``, ``cadence_ratio`` (over the real answers'), ``density_kept``;
``telling`` (feature: real mean -> improv mean); ``corpus_pairs`` and the real answers' mean
``corpus_register`` / ``corpus_top`` / ``corpus_bass`` shift from their calls (semitones).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--folk-voice", default="folk", help="the shipped voice the folk group measures (default: folk)")
    parser.add_argument("--folk-pairs", type=int, default=200, help="phrase pairs at most (default: 200)")
    parser.add_argument("--folk-seed", type=int, default=2, help="the answers' seed (default: 2)")
    parser.add_argument("--folk-set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="a setting for improv's answers (repeatable)")
    parser.add_argument("--folk-corpus-pairs", type=int, default=3000, help="held-out pairs for the register check (default: 3000)")


def run(args: Any) -> dict[str, Any]:
    from _duet_column import ANSWERS, duet_pairs, improv_turns
    from improv.evaluation.answers import markov_answer
    from improv.evaluation.baselines import MarkovModel
    from improv.evaluation.duet import pairs_of
    from improv.evaluation.listener import discriminator_auc, feature_matrix, telling_features
    from improv.evaluation.outside import outside_auc
    from improv.evaluation.response import Turn, summarize
    from improv.model.sampling import SamplingParams
    from improv.settings.load import load_settings

    seed = args.folk_seed
    base = load_settings(None, [])
    duet = duet_pairs(args.folk_voice, args.folk_pairs)
    tok, heldout, kept, real = duet.tokenizer, duet.heldout, duet.kept, duet.real
    spb = tok.steps_per_beat
    markov = MarkovModel(base.eval.markov_order, tok.sizes).fit([p.tokens for p in duet.train])
    rng, plain = np.random.default_rng(seed), SamplingParams.from_settings(base.sample)
    improv = improv_turns(duet, list(args.folk_set), seed)
    other = [Turn(p.call, markov_answer(markov, tok, p.call_rows, rng, plain, p.span, base.serve.max_response_events), p.beat, p.bar, t.call_key, i) for i, (p, t) in enumerate(zip(kept, real)) for _ in range(ANSWERS)]
    r, m, o = (feature_matrix(ts, spb) for ts in (real, improv, other))
    groups = [t.index for t in real]
    s_real, s_improv = summarize(real, spb), summarize(improv, spb)

    def ratio(figure: str) -> float | None:
        return float(s_improv[figure] / s_real[figure]) if s_real[figure] else None

    out: dict[str, Any] = {
        "pairs": len(kept),
        "improv_auc": discriminator_auc(r, groups, m, [t.index for t in improv], seed),
        "markov_auc": discriminator_auc(r, groups, o, [t.index for t in other], seed),
        "improv_outside_auc": outside_auc({"real": real, "improv": improv}, spb).get("improv"),
        "rhythm_ratio": ratio("rhythm_uptake"),
        "motif_ratio": ratio("motif_uptake"),
        "cadence_ratio": ratio("cadence_rate"),
        "density_kept": s_improv["density_kept"],
        "telling": {t["feature"]: f"{t['real']:.2f} -> {t['system']:.2f}" for t in telling_features(r, m, 8)},
    }
    # The outside check: how the real answers sit against their calls over many held-out pairs.
    shifts = []
    for p in pairs_of(heldout, tok, 2, args.folk_corpus_pairs):
        c, a = p.call["pitch"].astype(np.int64), p.answer["pitch"].astype(np.int64)
        shifts.append((np.median(a) - np.median(c), a.max() - c.max(), a.min() - c.min()))
    mean = np.mean(shifts, axis=0) if shifts else [None] * 3
    out.update(corpus_pairs=len(shifts), corpus_register=float(mean[0]), corpus_top=float(mean[1]), corpus_bass=float(mean[2]))
    return out
