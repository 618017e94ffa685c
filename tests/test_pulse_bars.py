"""The bar of a slow call heard at double tempo (#18, fourth round): its beat heard is the
performer's eighth, and a bar of 4 of them is half the performer's 4/4 bar."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from improv.music.metre import meter
from improv.music.pulse import Pulse
from improv.music.pulse_track import track


def chorale_call(bpm: float, rng: np.random.Generator, written: list[float], bar_accent: float, mid_accent: float):
    """A 2-bar 4/4 call at ``bpm`` from written beat 0 (a bar line) to 8 (the last note held to
    the next bar line): onsets jittered 14 ms, bar lines and mid-bars a little louder."""
    beat = 60 / bpm
    onsets = np.array([10.0 + b * beat for b in written]) + rng.normal(0, 0.014, len(written))
    ends = [10.0 + b * beat for b in written[1:]] + [10.0 + 8 * beat]
    durations = [0.9 * (e - t) for t, e in zip(onsets, ends)]
    velocities = [int(64 + bar_accent * (b % 4 == 0) + mid_accent * (b % 4 == 2) + rng.normal(0, 4)) for b in written]
    pitches = [60 + int(b * 2) % 7 for b in written]
    return onsets, durations, velocities, pitches


def test_a_slow_four_four_heard_in_eighths_answers_on_its_bar_lines_with_a_slight_accent():
    """4/4 at 56 bpm with passing eighths is heard at 112 (near the 100 bpm prior): a bar of 4
    heard beats is half a bar, and an answer with ``entry: bar`` came in mid-bar whenever the bar
    lines were not clearly louder than the mid-bars (the doubling wanted 0.6 of a standard
    deviation). Where half the tempo heard holds the call too (``Pulse.slower``), a slight
    contrast doubles the bar, and which half starts it is settled by the call's edges as well
    (a call traded in bars starts and ends on bar lines)."""
    written = [0, 1, 1.5, 2, 3, 4, 5, 5.5, 6, 7]
    right = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        onsets, durations, velocities, pitches = chorale_call(56, rng, written, 10, 4)
        heard = track(onsets, 100.0, 0.1, durations, velocities)
        assert heard is not None and abs(heard.bpm / 112 - 1) < 0.04 and heard.slower
        pulse = meter(heard, onsets, durations, velocities, pitches)
        entry = pulse.time(pulse.next_downbeat(onsets[-1] + 1.5))  # where entry: bar comes in
        bars = (entry - 10.0) / (60 / 56) / 4  # the performer's bars from the call's first bar line
        right += abs(bars - round(bars)) < 0.1
    assert right >= 18, right  # 16 of 20 before


def test_only_where_half_the_tempo_holds_the_call_does_a_slight_contrast_double_the_bar():
    """The same call of 12 even beats, its bar lines (heard beats 0, 8) a little louder than its mid-bar (4):
    heard on a grid whose half tempo does not hold it (``Pulse.slower`` False) the bar of 4
    stays, as before; where the half tempo holds it, the bar is 8 beats, from the call's first."""
    beat = 60 / 112
    onsets = [10.0 + k * beat for k in range(12)]
    durations = [0.9 * beat] * 12
    velocities = [72 if k % 8 == 0 else 70 if k % 8 == 4 else 64 for k in range(12)]
    pitches = [60 + k % 5 for k in range(12)]
    pulse = Pulse(bpm=112.0, origin=10.0)
    plain = meter(pulse, onsets, durations, velocities, pitches)
    slower = meter(replace(pulse, slower=True), onsets, durations, velocities, pitches)
    assert plain.beats_per_bar == 4
    assert slower.beats_per_bar == 8 and slower.downbeat % 8 == 0
