"""Answer mode and a key that stays down: a note-off lost to a JACK xrun (or a pulled cable) ends
the call after ``serve.hold_bars`` bars of the performer's pulse with nothing else played, not
``stuck_note_s`` (10 s) later, as the band's rule ends the band; a note genuinely held for a bar
and a half is not cut; before the set has a tempo, the first call's own pulse counts the bars,
and with none to hear the listener falls back to ``stuck_note_s``. All in
simulated time (``LadderModel``: the answer is one beat per note, on the call's grid)."""

from __future__ import annotations

import dataclasses

import mido
import pytest

from support.fakes import LadderModel, phrase, simulate

from improv.realtime.engine import Engine
from improv.settings.serve_section import ServeSettings

BEAT = 0.6  # 100 bpm
BAR = 4 * BEAT
PLAIN = ServeSettings(estimate_tempo=False, keep_key=False, silence_ms=600.0, silence_beats=0.0, answer_lead_beats=0.0, phrase_ending=False, rule_dynamics=0.0, response_unit="events")
CALL = phrase([60, 62, 64, 65], step=BEAT / 2, length=BEAT / 2 - 0.05)  # onsets 0 .. 0.9
LAST_ON = 0.9


def decisions(settings: ServeSettings, script, until: float = 30.0) -> list[float]:
    """When each call ended (``Exchange.decided_at``: the keys' release, then the silence)."""
    e = Engine(LadderModel(), settings)
    simulate(e, sorted(script, key=lambda ev: ev[0]), until=until)
    return [x.decided_at for x in e.take_reports()]


def test_a_lost_note_off_ends_the_call_after_hold_bars_not_at_stuck_note_s():
    assert PLAIN.hold_bars == 2 and PLAIN.stuck_note_s == 10.0
    lost = CALL[:-1]  # the last key's note-off never arrives
    # Released 2 bars after the last key struck, then the silence (0.6 s): before, 0.9 + 10 + 0.6.
    assert decisions(PLAIN, lost) == [pytest.approx(LAST_ON + 2 * BAR + 0.6)]
    assert decisions(dataclasses.replace(PLAIN, hold_bars=1), lost) == [pytest.approx(LAST_ON + BAR + 0.6)]
    # stuck_note_s stays the ceiling where it is the shorter
    assert decisions(dataclasses.replace(PLAIN, stuck_note_s=2.0), lost) == [pytest.approx(LAST_ON + 2.0 + 0.6)]
    # at another tempo, its bars: 150 bpm, a 1.6 s bar
    assert decisions(dataclasses.replace(PLAIN, bpm=150.0), lost) == [pytest.approx(LAST_ON + 2 * 1.6 + 0.6)]


def test_a_note_held_a_bar_and_a_half_is_not_cut():
    """A fermata on the call's last note: the call ends on its real release."""
    held_off = LAST_ON + 1.5 * BAR
    script = CALL[:-1] + [(held_off, CALL[-1][1])]
    assert decisions(PLAIN, script) == [pytest.approx(held_off + 0.6)]


def test_a_pedal_left_down_is_still_released_after_stuck_note_s():
    """A pedal that rings on is no lost key: seconds, as before (a lost pedal-up: stuck_note_s)."""
    script = [(0.0, mido.Message("control_change", control=64, value=127))] + CALL
    assert decisions(dataclasses.replace(PLAIN, stuck_note_s=6.0), script) == [pytest.approx(1.15 + 6.0 + 0.6)]


def test_the_first_call_counts_its_own_bars():
    """Estimating the tempo, before any call's tempo is heard (serve.bpm, 120 here, only a guess),
    a lost note-off ends the first call after hold_bars bars of the call's own pulse (its eighths
    at 100 bpm: a 2.4 s bar), not after stuck_note_s (10 s) as before."""
    s = dataclasses.replace(PLAIN, estimate_tempo=True, bpm=120.0)
    lost = CALL[:-1]
    assert decisions(s, lost) == [pytest.approx(LAST_ON + 2 * BAR + 0.6)]
    assert decisions(dataclasses.replace(s, hold_bars=1), lost) == [pytest.approx(LAST_ON + BAR + 0.6)]
    assert decisions(dataclasses.replace(s, stuck_note_s=3.0), lost) == [pytest.approx(LAST_ON + 3.0 + 0.6)]  # still the ceiling
    # a note genuinely held a bar and a half at the end of the first call is not cut
    held_off = LAST_ON + 1.5 * BAR
    assert decisions(s, CALL[:-1] + [(held_off, CALL[-1][1])]) == [pytest.approx(held_off + 0.6)]


def test_with_no_pulse_heard_a_lost_note_off_waits_stuck_note_s():
    """A first call with no pulse to hear (three onsets: too few for the comb): seconds decide."""
    s = dataclasses.replace(PLAIN, estimate_tempo=True, stuck_note_s=6.0)
    three = CALL[:4] + CALL[4:5]  # 60 and 62 played, 64 struck and never released
    assert decisions(s, three) == [pytest.approx(0.6 + 6.0 + 0.6)]


def test_once_the_set_has_a_tempo_the_bars_are_the_performers():
    """Estimating: the first call sets the tempo (120 bpm: a 2 s bar of ``bar_beats``, as the band
    counts them); the second call's lost note-off ends it after two of those bars (4 s), not
    after 2 bars of serve.bpm (4.8 s) or stuck_note_s (10 s)."""
    s = dataclasses.replace(PLAIN, estimate_tempo=True)
    first_call = phrase([60, 62, 64, 65, 67, 65, 64, 62], step=0.5, length=0.4)
    start = 12.0
    second = phrase([60, 64, 62, 65, 64, 67], start=start, step=0.5, length=0.4)
    e = Engine(LadderModel(), s)
    simulate(e, first_call + second[:-1], until=40.0)
    assert e.tempo_source == "estimate" and e.bpm == pytest.approx(120.0, abs=1.0), (e.tempo_source, e.bpm)
    bar = 4 * 60 / e.bpm
    assert [x.decided_at for x in e.take_reports()][1] == pytest.approx(start + 2.5 + 2 * bar + 0.6)
