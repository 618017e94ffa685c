"""Generation and evaluation figures.

* ``generate_events_per_s``: events per second of ``improv.generate.sample_rows`` (numpy step
  model, temperature / top-p sampling of all four heads, state update), one BLAS thread, the
  shipped default voice (``voice.default``; an untrained model of the configured size where it is
  missing, same cost per event; a note on stderr says which).
* ``copy_index_1m_s`` / ``copy_search_1m_s``: building ``improv.evaluate.CopyIndex`` over a
  synthetic corpus of a million events (1,000 pieces of 1,000 events, a random walk over a small
  alphabet, so short runs recur as in music), and finding the longest verbatim run of 16 queries of
  256 events each (as `improv eval` does for its samples), each with a planted copy.
* ``markov_fit_1m_s``: fitting the order-4 Markov baseline on the same million events.
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import child_main, run_child


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generate-events", type=int, default=3000, help="generate: events timed")


def run(args: argparse.Namespace) -> dict[str, float]:
    events = getattr(args, "generate_events", 3000)
    figures = run_child(__file__, "generate", {"events": events})
    figures.update(run_child(__file__, "corpus", {}))
    return figures


# ---- in the child process -----------------------------------------------------------------------


def generate_speed(events: int) -> dict[str, float]:
    import numpy as np

    from improv.errors import ImprovError
    from improv.generation.compose import sample_rows
    from improv.model.checkpoint import untrained_checkpoint
    from improv.model.sampling import SamplingParams
    from improv.model.voices import load_player, model_location
    from improv.settings.sections import Settings

    settings = Settings()
    try:
        path = model_location(None, None, settings.voice.default)
        model = load_player(path).step_model()
        print(f"note: generate_events_per_s uses {path}", file=sys.stderr)
    except ImprovError:
        model = untrained_checkpoint(settings.model, settings.tokenizer, seed=0).step_model()
        print(f"note: no voice {settings.voice.default!r}: generate_events_per_s uses an untrained default-size model (same cost per event)", file=sys.stderr)
    params = SamplingParams.from_settings(settings.sample)
    rng = np.random.default_rng(0)
    sample_rows(model, rng, params, 100)  # warm up
    done, started = 0, time.perf_counter()
    while done < events:  # pieces end at EOS; keep going until enough events are timed
        done += max(len(sample_rows(model, rng, params, events - done).rows), 1)
    seconds = time.perf_counter() - started
    return {"generate_events_per_s": round(done / seconds, 1)}


def synthetic_corpus(pieces: int = 1000, length: int = 1000, seed: int = 0):
    """Token rows of a random walk over pitch with a few rhythms and dynamics (BOS ... EOS)."""
    import numpy as np

    from improv.music.tokenizer import BOS, EOS

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(pieces):
        pitch = 60 + np.cumsum(rng.choice([-2, -1, 1, 2], length))
        pitch = 48 + np.abs((pitch - 48) % 48 - 24)  # folded into 48..72
        rows = np.stack([pitch, rng.choice([0, 3, 6, 12], length), rng.choice([3, 6, 12], length), rng.choice([3, 4, 5], length)], axis=1)
        out.append(np.concatenate([[[BOS, 0, 0, 0]], rows, [[EOS, 0, 0, 0]]]).astype(np.uint8))
    return out


def corpus_speed() -> dict[str, float]:
    import numpy as np

    from improv.evaluation.baselines import MarkovModel
    from improv.evaluation.metrics import CopyIndex, note_codes
    from improv.music.tokenizer import Tokenizer

    tok = Tokenizer()
    pieces = synthetic_corpus()
    rng = np.random.default_rng(1)
    queries = []
    for i in range(16):
        q = synthetic_corpus(1, 256, seed=100 + i)[0][1:-1]
        src = pieces[int(rng.integers(len(pieces)))]
        run = int(rng.integers(10, 80))
        q[50 : 50 + run] = src[300 : 300 + run]
        queries.append(q)
    t0 = time.perf_counter()
    index = CopyIndex([note_codes(p, tok) for p in pieces])
    t1 = time.perf_counter()
    found = index.longest([note_codes(q, tok) for q in queries])
    t2 = time.perf_counter()
    MarkovModel(4, tok.sizes).fit(pieces)
    t3 = time.perf_counter()
    print(f"note: copy search found runs of {sorted(found.tolist())}", file=sys.stderr)
    return {"copy_index_1m_s": round(t1 - t0, 3), "copy_search_1m_s": round(t2 - t1, 3), "markov_fit_1m_s": round(t3 - t2, 2)}


if __name__ == "__main__":
    child_main({"generate": generate_speed, "corpus": corpus_speed})
