"""An answer's dynamics, modelled from the call (the shipped corpora carry no dynamics to learn:
their notes all have one velocity, so the voices' velocity heads know none).

The call gives a level (its mean velocity), a contour (a least-squares line through its
velocities in playing order: where it started and where it ended) and a spread (the standard
deviation of its velocities around that line, at least ``MIN_SPREAD``). The answer then:

* sits at the call's level, leaning toward where the call ended (``LEAN``) and carrying its
  contour on at half size: a crescendo call gets a rising answer, a diminuendo a falling one, a
  steady call a steady answer;
* shapes the phrase: an arc (louder in the middle, ``ARC`` spreads at the top), notes on a beat
  accented over those between beats, every other beat more (``STRONG``, ``WEAK``, ``OFF_BEAT``
  spreads), and a softer ending (``ENDING`` spreads off its last fifth);
* keeps what the voice's own velocity head varies from its own mean, within ``OWN`` spreads;
* stays within a spread of the call's softest and loudest notes, that variation included.

``serve.follow_velocity`` blends the model's own velocities (0) with this shape (1);
``serve.rule_dynamics`` scales the shape (0: the call's level alone, as flat as the voice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

MIN_SPREAD = 6.0  # velocity steps: even a call played at one velocity gets a phrase shape
LEAN = 0.5  # of the call's rise (end minus start), added to its level: it starts near where the call ended
CARRY = 0.3  # of the call's rise, spread over the answer
ARC = 0.8  # spreads at the top of the arc
STRONG = 0.8  # spreads over the level on a strong beat (every other beat from the first note)
WEAK = -0.2  # ... on the beats between them: a line of quarter notes still has a pulse of touch
OFF_BEAT = -0.6  # ... between beats
ENDING = 0.8  # spreads off the answer's last fifth
OWN = 1.0  # the voice's own velocity variation kept, at most this many spreads from its mean


@dataclass(frozen=True)
class Dynamics:
    """The call's level, spread and rise (velocity steps), read from its velocities in order."""

    level: float
    spread: float  # around the line (the call's accents, not its crescendo)
    rise: float  # the least-squares line's end minus its start
    low: float = 1.0  # the call's softest and loudest notes: the answer stays within a spread of them
    high: float = 127.0

    @classmethod
    def of_call(cls, velocities: Sequence[float]) -> "Dynamics":
        v = np.asarray(velocities, dtype=np.float64)
        if len(v) == 0:
            return cls(80.0, MIN_SPREAD, 0.0)
        rise, residual = 0.0, v - v.mean()
        if len(v) >= 3:
            x = np.linspace(0.0, 1.0, len(v))
            slope, intercept = np.polyfit(x, v, 1)
            rise, residual = float(slope), v - (slope * x + intercept)
        return cls(float(v.mean()), max(float(residual.std()), MIN_SPREAD), rise, float(v.min()), float(v.max()))

    def target(self, progress: float, beats: float, strength: float = 1.0) -> float:
        """The shaped velocity of a note ``progress`` (0..1) through the answer, ``beats`` after its
        first note (which lies on a beat); ``strength`` 0: the call's level alone, flat."""
        if strength <= 0:
            return self.level
        p = min(max(progress, 0.0), 1.0)
        level = self.level + LEAN * self.rise + CARRY * self.rise * (p - 0.5)
        arc = ARC * self.spread * (np.sin(np.pi * p) - 0.5)
        on_beat = abs(beats - round(beats)) < 1e-6
        strong = on_beat and round(beats) % 2 == 0  # every other beat from the first note: the stronger ones
        accent = self.spread * (STRONG if strong else WEAK if on_beat else OFF_BEAT)
        ending = -ENDING * self.spread * max(p - 0.8, 0.0) / 0.2
        shaped = level + arc + accent + ending
        shaped = min(max(shaped, self.low - self.spread), self.high + self.spread)
        return self.level + strength * (shaped - self.level)


def answer_velocity(dynamics: Dynamics, follow: float, model_velocity: float, model_mean: float, progress: float, beats: float, strength: float = 1.0) -> int:
    """A note's velocity (1..127): the model's own (``follow`` 0) or the call's shape plus what
    the model varies from its own mean (``follow`` 1), or between; ``strength``: of the shape
    (``serve.rule_dynamics``; 0: the call's level, flat)."""
    # The voice's own variation, within a spread: a flat corpus's velocity head that draws a rare
    # class (1 among 90s) is noise, not a dynamic (it gave answer notes at velocity 1 in a soft answer).
    own = min(max(model_velocity - model_mean, -OWN * dynamics.spread), OWN * dynamics.spread)
    # ... and the sum within a spread of the call's softest and loudest notes, as the shape is: the
    # voice's variation added past that edge stretched a renaissance answer to 2.06x the call's sd.
    shaped = min(max(dynamics.target(progress, beats, strength) + own, dynamics.low - dynamics.spread), dynamics.high + dynamics.spread)
    velocity = (1.0 - follow) * model_velocity + follow * shaped
    return int(min(max(round(velocity), 1), 127))
