"""An answer in beats ends on a bar line of its grid (``realtime.bar_end``), and the engine's
answer does when it plays on a grid heard from the call."""

from __future__ import annotations

import dataclasses

import pytest

from improv.music.pulse import Pulse
from improv.realtime.bar_end import SHORTEST, bar_end

FOUR = Pulse(bpm=120.0, origin=0.0, beats_per_bar=4, downbeat=1)  # bar lines at beats 1, 5, 9, 13 ...


@pytest.mark.parametrize(
    ("first", "length", "expected"),
    [
        (1.0, 8.0, 8.0),  # on a downbeat, whole bars: as long as the call
        (3.0, 7.0, 6.0),  # entered on beat 3: to the bar line at 9 (nearest 10), not to beat 2 of a bar
        (3.0, 9.5, 10.0),  # ... 12.5 is nearer 13
        (3.0, 4.0, 6.0),  # halfway between two bar lines (7: 5 or 9): on to the later
        (12.5, 0.25, 4.5),  # a short call entered late: on to the next bar line, never at once
    ],
)
def test_the_answer_ends_at_the_bar_line_nearest_its_length(first, length, expected):
    assert bar_end(FOUR, first, length) == expected
    assert bar_end(FOUR, first, length) >= SHORTEST
    assert (first + bar_end(FOUR, first, length) - FOUR.downbeat) % FOUR.beats_per_bar == 0


def test_the_engine_answer_on_a_heard_grid_ends_on_a_bar_line():
    """A call of 7 quarter notes at 120 bpm in 4/4 heard from the call: the answer enters a beat
    or two after it and its last note starts before a bar line of the heard grid, the one its
    length reaches; played with the length cut at the call's span, it stopped inside a bar."""
    from support.fakes import phrase, simulate

    from improv.model.step_model import random_step_model
    from improv.realtime.engine import Engine
    from improv.settings.serve_section import ServeSettings

    model = random_step_model(seed=3)
    call = phrase([60, 62, 64, 65, 67, 65, 64, 62], step=0.5, length=0.45)
    ends = []
    for seed in range(4):
        e = Engine(model, dataclasses.replace(ServeSettings(), imitation=0.0), seed=seed)
        simulate(e, call, until=5.5)  # the answer under way
        playback = e.answer.playback if e.answer is not None else None
        if playback is None or playback.length is None:
            continue
        end = playback.first_beat + playback.length
        ends.append((end - playback.pulse.downbeat) % playback.pulse.beats_per_bar)
    assert ends and all(abs(x) < 1e-9 for x in ends), ends
