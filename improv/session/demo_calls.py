"""Where `improv demo`'s performer finds its calls.

By default (``demo.source: ""``) a voice is shown with music in its own style that it never trained
on: phrases of its held-out pieces, whose names the model file carries. A music21 piece is read
alone (an ABC book's one tune, not the whole book), so a fresh install's first demo starts in a
second. ``demo.source`` names other music instead (as for `improv corpus`), and a model without
held-out pieces (an untrained one) falls back to ``FALLBACK_SOURCE``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from improv.errors import ImprovError, MIDIConversionError
from improv.music.rhythm import beats_per_bar
from improv.session.demo_plan import Phrase, cut_phrase
from improv.realtime.calls import threshold_s
from improv.settings.sections import CorpusSettings, DemoSettings
from improv.settings.serve_section import ServeSettings

FALLBACK_SOURCE = "music21:bach"
MUSIC21_PREFIX = "music21:"


def demo_phrases(demo: DemoSettings, corpus: CorpusSettings, tokenizer: Any, info: dict, rng: np.random.Generator, serve: ServeSettings | None = None) -> tuple[list[Phrase], str]:
    """One phrase per call, each from a different piece, and where they came from (for the
    status line). Each ends before a rest that ``serve``'s silence threshold would end the call at."""
    heldout = info.get("heldout") or []
    serve = serve or ServeSettings()
    if not demo.source and heldout:
        return _heldout_phrases(heldout, demo, serve, corpus, tokenizer, rng), "the voice's held-out pieces"
    source = demo.source or FALLBACK_SOURCE
    return _source_phrases(source, demo, serve, corpus, tokenizer, rng), source


# The engine hears a call's tempo itself and may hear it an octave up (88 bpm as 176): its silence
# threshold is then half as long. A phrase ends before a rest that would end the call even then.
REST_MARGIN = 0.9


def _phrase(notes: Any, name: str, bpm: float | None, meter: tuple[int, int] | None, demo: DemoSettings, serve: ServeSettings, tokenizer: Any, rng: np.random.Generator) -> Phrase | None:
    """A call from a piece's notes, on the token grid (what the voice would hear), cut at a bar,
    ending before a rest long enough to end the call."""
    grid = tokenizer.decode(tokenizer.encode(notes))
    bar = beats_per_bar(meter)
    tempo = bpm or demo.bpm
    rest = REST_MARGIN * threshold_s(serve, 2 * tempo) * tempo / 60
    return cut_phrase(grid, name, tempo, demo.phrase_beats, rng, bar_beats=bar, max_rest_beats=rest, bpm_source="piece" if bpm else "config")


def _heldout_phrases(names: Sequence[str], demo: DemoSettings, serve: ServeSettings, corpus: CorpusSettings, tokenizer: Any, rng: np.random.Generator) -> list[Phrase]:
    from improv.corpus.sources import music21_corpus_dir
    from improv.music.scores import read_music21_work

    phrases: list[Phrase] = []
    tried = 0
    for i in rng.permutation(len(names)):
        if len(phrases) >= demo.calls or tried >= 4 * demo.calls + 8:  # a few unreadable ones are fine
            break
        tried += 1
        name = str(names[int(i)])
        try:
            if name.startswith(MUSIC21_PREFIX):
                rel, _, number = name[len(MUSIC21_PREFIX) :].partition("#")
                notes, bpm, meter = read_music21_work(str(music21_corpus_dir() / rel), f"#{number}" if number else "")
            else:  # a user's own file (read through the corpus cache, as training read it)
                piece = _user_piece(name, tokenizer, corpus)
                if piece is None:
                    continue
                notes, bpm, meter = tokenizer.decode(piece.tokens), piece.bpm, piece.meter
        except (MIDIConversionError, OSError):
            continue  # the piece moved or cannot be read here: another one
        phrase = _phrase(notes, name, bpm, meter, demo, serve, tokenizer, rng)
        if phrase is not None:
            phrases.append(phrase)
    if not phrases:
        raise ImprovError(f"none of the voice's {len(names)} held-out pieces could be read here: name some music with --set demo.source=...")
    return phrases


def _user_piece(name: str, tokenizer: Any, corpus: CorpusSettings) -> Any:
    from improv.corpus.load import load_corpus

    file = name.split("#", 1)[0]
    if not Path(file).exists():
        return None
    pieces, _ = load_corpus([file], tokenizer, corpus, progress=False)
    return next((p for p in pieces if p.name == name), None)


def _source_phrases(source: str, demo: DemoSettings, serve: ServeSettings, corpus: CorpusSettings, tokenizer: Any, rng: np.random.Generator) -> list[Phrase]:
    """Phrases from ``source``'s works, a different work each."""
    from improv.corpus.load import load_corpus
    from improv.corpus.sources import resolve_sources

    works = resolve_sources([source])
    order = rng.permutation(len(works))
    phrases: list[Phrase] = []
    for start in range(0, len(order), demo.calls):  # a few more works when some cannot be read
        chosen = [works[i].name for i in order[start : start + demo.calls]]
        pieces, _ = load_corpus(chosen, tokenizer, corpus, progress=False)
        for piece in pieces:
            phrase = _phrase(tokenizer.decode(piece.tokens), piece.name, piece.bpm, piece.meter, demo, serve, tokenizer, rng)
            if phrase is not None:
                phrases.append(phrase)
        if len(phrases) >= demo.calls:
            return phrases[: demo.calls]
    if not phrases:
        raise ImprovError(f"no playable phrase found in {source}")
    return phrases
