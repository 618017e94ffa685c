"""A held note is no pause (#18, fifth round): the set's tempo carries across it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from improv.realtime.engine import Engine
from improv.realtime.tempo import SetTempo
from improv.settings.serve_section import ServeSettings
from support.fakes import LadderModel, off, on, simulate


def notes_at(bpm: float, start: float, beats: list[float]) -> list[SimpleNamespace]:
    beat = 60 / bpm
    return [SimpleNamespace(onset=start + b * beat, off=start + (b + 0.9) * beat, velocity=80 if b % 4 == 0 else 64, pitch=60) for b in beats]


def test_a_call_after_a_long_held_note_is_heard_on_the_sets_tempo_not_anew():
    """Traded at 60 bpm (heard at 60 once the set says so): the answer's last note struck 10 s
    before the next call but held until 1 s before it. Counted from its onset that was a long
    pause, and the call was heard anew (at 120, near serve.bpm 100) and its grid not carried; a
    held note is no pause."""
    tempo = SetTempo(ServeSettings())
    tempo.bpm, tempo.beats_per_bar = 60.0, 4  # the set's tempo, as an earlier call left it
    call = SimpleNamespace(notes=notes_at(60, 20.0, [0, 1, 2, 3, 4, 5, 6, 7]), first_onset=20.0, pos_before=10.0, sound_before=19.0)
    assert not tempo.fresh(call)
    assert abs(tempo.hear(call, 28.5).bpm / 60 - 1) < 0.04
    call.sound_before = 11.0  # the same call after a real pause of 9 s (over 8 beats): heard anew
    assert tempo.fresh(call)


def test_the_engine_hands_the_tempo_the_end_of_the_last_note_before_a_call():
    """``Call.sound_before``: the latest end of a note in the window (the call's, the answer's),
    not the last onset."""
    seen = []
    engine = Engine(LadderModel(duration=20), ServeSettings(echo_ms=0), seed=1)
    hear = engine._planner.tempo.hear

    def spy(call, now):
        seen.append((call.pos_before, call.sound_before))
        return hear(call, now)

    engine._planner.tempo.hear = spy
    script = []
    for k in range(6):  # quarters at 100 bpm, the last held 3 s
        t = 1.0 + 0.6 * k
        script += [(t, on(60 + k, 80)), (t + (3.0 if k == 5 else 0.5), off(60 + k))]
    script += [(t + 0.6 * j + 12.0, m) for j in range(5) for m in (on(70, 80),)] + [(t + 0.6 * j + 12.4, off(70)) for j in range(5)]
    simulate(engine, sorted(script, key=lambda x: x[0]), until=40.0)
    assert len(seen) >= 2
    pos_before, sound_before = seen[1]
    assert sound_before is not None and sound_before > pos_before  # the answer's (or the call's) notes held past their onsets
    assert np.isfinite(sound_before)



def test_a_pause_within_two_of_the_sets_bars_is_no_long_pause():
    """#18, sixth round: traded at 60 bpm heard at 120 with a bar of 8 (4 s), the performer waits
    for their next bar line after the answer: 7 s of silence. Counted in seconds alone (6 s) that
    was a long pause and the call was heard anew (a 6-note call's own tempo, 1.6 % off, and the
    set's grid lost); two of the set's bars (8 s) is the measure. Past them, heard anew."""
    tempo = SetTempo(ServeSettings())
    tempo.bpm, tempo.beats_per_bar = 120.0, 8
    call = SimpleNamespace(notes=notes_at(60, 20.0, [0, 1, 2, 3, 4, 5, 6, 7]), first_onset=20.0, pos_before=11.0, sound_before=13.0)
    assert not tempo.fresh(call)
    call.sound_before = 11.5  # 8.5 s: over two bars
    assert tempo.fresh(call)
    tempo.beats_per_bar = 2  # a short bar: the 6 s rule still holds
    call.sound_before = 13.0
    assert tempo.fresh(call)

