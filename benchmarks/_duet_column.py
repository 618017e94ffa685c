"""What the benches of improv's answers on `improv eval --duet`'s pairs share (bench_folk,
bench_line4, bench_ending): a shipped voice's held-out pairs as the eval keeps them (``pairs_of``,
``playable_call``, each call's key), the real answers as turns, and improv's answers to them with
the eval's seeds and the voice's name (its own rules: ``serve.keyless_voices``). Needs torch
(the voice's training record)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ANSWERS = 2  # improv's answers a call, as the README's eval runs (--answers 2)


@dataclass
class DuetPairs:
    voice: str  # the name the engine knows the voice by
    model: Any
    tokenizer: Any
    train: list[Any]  # the voice's training pieces
    heldout: list[Any]
    kept: list[Any]  # the pairs the eval answers
    real: list[Any]  # their real answers, as ``response.Turn``s (index: the call)


def duet_pairs(voice: str, max_pairs: int) -> DuetPairs:
    from improv.evaluation.answers import playable_call
    from improv.evaluation.duet import pairs_of
    from improv.evaluation.response import Turn, phrase_key
    from improv.evaluation.run import load_pieces
    from improv.model.voices import training_checkpoint, voice_path
    from improv.settings.load import load_settings

    base = load_settings(None, [])
    checkpoint = training_checkpoint(voice_path(voice))
    ckpt, _, train, heldout = load_pieces(str(checkpoint), None, base)
    tok = ckpt.tokenizer
    kept = [p for p in pairs_of(heldout, tok, 2, max_pairs) if playable_call(p.call, base.serve, p.bpm or base.serve.bpm)]
    real = [Turn(p.call, p.answer, p.beat, p.bar, phrase_key(p.call, p.beat, p.bar), i) for i, p in enumerate(kept)]
    return DuetPairs(checkpoint.stem, ckpt.step_model(), tok, train, heldout, kept, real)


def improv_turns(duet: DuetPairs, sets: list[str], seed: int) -> list[Any]:
    """improv's answers to every kept call (``ANSWERS`` a call, the seeds `evaluate_duet` gives
    them), with the config's settings and ``sets`` (``section.key=value``)."""
    from improv.evaluation.answers import engine_answer
    from improv.evaluation.response import Turn
    from improv.model.sampling import SamplingParams
    from improv.settings.load import load_settings

    settings = load_settings(None, list(sets))
    params = SamplingParams.from_settings(settings.sample)
    out = []
    for i, (p, r) in enumerate(zip(duet.kept, duet.real)):
        for a in range(ANSWERS):
            played = engine_answer(duet.model, settings.serve, params, p.call, p.span, p.bpm or settings.serve.bpm, seed * 1_000_003 + i * ANSWERS + a, duet.voice)
            out.append(Turn(p.call, played.notes, p.beat, p.bar, r.call_key, i))
    return out
