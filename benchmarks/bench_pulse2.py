"""The performer's bar, heard from many fresh calls: the metre alone, without the engine.

``bench_pulse``'s bar entry plays 33 calls through the engine (one call moves it 3 %), and counts
a hit only within 30 ms, so the fresh call's timing error a bar on hides whether the bar was
right. This one hears ``bench_pulse``'s steady calls (the same phrases and performer: bars
accented, onsets jittered 12-20 ms) with ``realtime.tempo.SetTempo`` alone, each call fresh, three
times at different tempi (40-220 bpm): 198 calls per set, a few seconds. Where an answer with
``entry: bar`` would come in (the first downbeat a beat after the call's last note-off), is it
within a quarter beat of the performer's bar line?

Figures (``pulse2_`` for the default phrases; ``pulse2_heldout_`` for those past the first 100,
in another performance: the outside check, none of them looked at while the metre was tuned):
``bar_line_chosen`` (all, and ``_24`` / ``_34`` / ``_44`` by metre), ``clear_share`` (calls whose
bar beats every bar with other bar lines by ``music.metre.BAR_CLEAR``), ``chosen_clear`` (the
figure among them), ``bars_waited`` (the silence from the call's last note-off to that entry, in
the performer's bars: a bar right only because it is twice as long would show here). It runs on
any improv (``Pulse.bar_clear`` missing: no clear figures).
"""

from __future__ import annotations

import argparse
import math
from types import SimpleNamespace
from typing import Any

import numpy as np

import bench_pulse as B  # the phrases, the performer, its bar lines
from improv.music import metre
from improv.realtime.tempo import SetTempo
from improv.settings.serve_section import ServeSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pulse2-calls", type=int, default=66, metavar="N", help="pulse2: phrases per set, each played 3 times (default: 66)")


def hear(pair: Any, who: B.Performer, rng: np.random.Generator) -> tuple[Any, float]:
    """(the pulse heard from the call, when its last note ended), the call played by ``who``."""
    script, end = B.perform(pair, who, rng, float(rng.uniform(0.012, 0.020)))
    notes: list[SimpleNamespace] = []
    for t, m in script:  # note-offs to their note-ons (script order: each on before its off)
        if m.type == "note_on":
            notes.append(SimpleNamespace(onset=t, off=None, velocity=m.velocity, pitch=m.note))
        else:
            next(n for n in notes if n.pitch == m.note and n.off is None).off = t
    notes.sort(key=lambda n: n.onset)
    call = SimpleNamespace(notes=notes, first_onset=notes[0].onset, pos_before=None, sound_before=None)
    return SetTempo(ServeSettings()).hear(call, end + 0.3), end


def measure(skip: int, count: int) -> dict[str, float]:
    pairs = B.phrases(skip + count + 30)[skip:][:count]
    rng = np.random.default_rng(18 + skip)
    rows = []  # (beats per bar written, chosen, clear, bars waited)
    for rep in range(3):
        for i, pair in enumerate(pairs):
            who = B.Performer(B.TEMPI[(i + 3 * rep) % len(B.TEMPI)], 1.0)
            pulse, end = hear(pair, who, rng)
            if pulse is None:
                rows.append((pair.bar, False, False, math.nan))
                continue
            entry = pulse.time(pulse.next_downbeat(end + 0.3 + 0.5 * pulse.beat_s))
            chosen = B.beat_ms(who, entry, pair.bar) <= 250 * who.beat_s(pair.span)
            clear = getattr(pulse, "bar_clear", None)
            wait = (entry - end) / (pair.bar * who.beat_s(pair.span))  # the silence before the answer, in the performer's bars
            rows.append((pair.bar, chosen, clear is not None and clear > getattr(metre, "BAR_CLEAR", math.inf), wait))
    bar, chosen, clear, wait = (np.array(c, dtype=np.float64) for c in zip(*rows))
    out = {"calls": float(len(rows)), "bar_line_chosen": float(chosen.mean()), "bars_waited": float(np.nanmean(wait))}
    for beats in (2, 3, 4):
        out[f"bar_line_chosen_{beats}4"] = float(chosen[bar == beats].mean()) if np.any(bar == beats) else math.nan
    out["clear_share"] = float(clear.mean())
    out["chosen_clear"] = float(chosen[clear > 0].mean()) if np.any(clear > 0) else math.nan
    return out


def run(args: argparse.Namespace) -> dict[str, float]:
    count = getattr(args, "pulse2_calls", 66)
    out = {f"pulse2_{k}": v for k, v in measure(0, count).items()}
    out.update({f"pulse2_heldout_{k}": v for k, v in measure(100, count).items()})
    return out
