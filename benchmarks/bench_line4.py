"""The variety rule (``serve.rule_variety``, ``realtime/variety.py``) on and off, for one voice on
`improv eval --duet`'s own pairs and seeds (``pairs_of``, ``playable_call``, ``engine_answer``,
``listener``'s classifier, ``outside_auc``): improv's column of the eval, without the NLLs and
the other systems, so an on/off comparison takes a few minutes, not a full eval per setting.
It reproduces the full eval's improv figures exactly (base seed 1: 0.553 at ``rule_variety`` 0).

Needs torch (the voice's training record) and scikit-learn. Figures, for ``off`` (strength 0:
main's answers) and ``on`` (the default): ``*_auc``, ``*_outside_auc``, ``*_rhythm_ratio``,
``*_motif_ratio``, ``*_cadence_ratio`` (over the real answers'), ``*_density_kept``,
``*_distinct_pitches`` / ``*_range`` / ``*_pitch_classes`` (answer minus call, mean; the real
answers' as ``real_*``).
"""

from __future__ import annotations

import argparse
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--line4-voice", default="folk", help="the shipped voice (default: folk)")
    parser.add_argument("--line4-pairs", type=int, default=60, help="phrase pairs at most (default: 60, as the eval)")
    parser.add_argument("--line4-seed", type=int, default=0, help="the answers' seed (default: 0)")


def run(args: Any) -> dict[str, Any]:
    from _duet_column import duet_pairs, improv_turns
    from improv.evaluation.listener import FEATURES, discriminator_auc, feature_matrix
    from improv.evaluation.outside import outside_auc
    from improv.evaluation.response import summarize
    from improv.settings.load import load_settings

    seed = args.line4_seed
    base = load_settings(None, [])
    duet = duet_pairs(args.line4_voice, args.line4_pairs)
    spb, real = duet.tokenizer.steps_per_beat, duet.real
    r, s_real = feature_matrix(real, spb), summarize(real, spb)
    columns = [FEATURES.index(f) for f in ("distinct_pitches", "range", "pitch_classes")]
    out: dict[str, Any] = {"pairs": len(real)}
    out.update({f"real_{FEATURES[c]}": float(r[:, c].mean()) for c in columns})
    for name, strength in (("off", 0.0), ("on", base.serve.rule_variety)):
        improv = improv_turns(duet, [f"serve.rule_variety={strength}"], seed)
        m, s = feature_matrix(improv, spb), summarize(improv, spb)
        out[f"{name}_auc"] = discriminator_auc(r, [t.index for t in real], m, [t.index for t in improv], seed)
        out[f"{name}_outside_auc"] = outside_auc({"real": real, "improv": improv}, spb).get("improv")
        for figure in ("rhythm_uptake", "motif_uptake", "cadence_rate"):
            out[f"{name}_{figure.split('_')[0]}_ratio"] = float(s[figure] / s_real[figure]) if s_real[figure] else None
        out[f"{name}_density_kept"] = s["density_kept"]
        out.update({f"{name}_{FEATURES[c]}": float(m[:, c].mean()) for c in columns})
    return out
