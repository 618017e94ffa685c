"""Accompaniment over JACK (issue 20): a held-out chorale soprano at 80 bpm played into `improv
serve --mode accompany`; improv plays under it, on the beat, never stopping for the performer's
notes, every note closed. The grid figures (median, p90) are measured in
``benchmarks/bench_accompany.py``; here the bounds are a quarter of a beat, which no loaded
machine reaches but an accompaniment off the beat or waiting for the phrase's end would."""

from __future__ import annotations

import numpy as np
import pytest
from support.accompany_jack import accompany_over_jack
from support.fakes import unclosed
from support.jack_server import running_jack
from support.serve_process import tiny_checkpoint_file

from improv.evaluation.accompany import harmony_ratio

pytestmark = [pytest.mark.jack, pytest.mark.slow]


@pytest.fixture(scope="module")
def jack():
    yield from running_jack()


def test_a_chorale_soprano_is_accompanied_on_the_beat_over_jack(jack, tmp_path):
    run = accompany_over_jack(jack, tiny_checkpoint_file(tmp_path), beats=12.0, bpm=80.0)
    assert run.exit_code == 0, run.lines
    assert unclosed(run.got) == {}, "a note was left hanging"
    last_key = max(off for _, off, _ in run.melody)
    during = [on for on, _, _ in run.improv if on < last_key]
    assert len(during) >= 12, run.lines  # it played while the performer played: no barge-in, no waiting
    for on, _, p in run.improv:  # under the melody: below the lowest note it has played so far
        assert p < min(q for t, _, q in run.melody if t < on - 0.1), (on, p)  # (the note on its own beat: not known yet)
    errors = run.grid_errors_ms()
    print(f"grid ms: median {np.median(errors):.2f}, p90 {np.percentile(errors, 90):.2f}; harmony {harmony_ratio(run.improv, run.melody):.3f}")
    assert np.median(errors) < run.beat_s * 1000 / 4, errors  # on the beat, not somewhere between
    assert max(on for on, _, _ in run.improv) <= last_key + 4 * run.beat_s + 0.1  # a bar more, then silence
    assert harmony_ratio(run.improv, run.melody) > 0.5
