"""The evaluations' one serve loop in simulated time (``evaluation.drive``): one call and its
answer by default, everything up to ``until`` with ``run_to_until`` (what ``eval --accompany``
needs), and the engine shut down where it stopped when asked."""

from __future__ import annotations

from support.fakes import LadderModel, kinds, phrase, unclosed

from improv.evaluation.drive import drive
from improv.realtime.engine import Engine
from improv.settings.serve_section import ServeSettings

PLAIN = ServeSettings(estimate_tempo=False, keep_key=False, silence_ms=600.0, silence_beats=0.0, answer_lead_beats=0.0, phrase_ending=False, rule_dynamics=0.0)
TWO_CALLS = phrase([60, 62, 64, 65], step=0.3, length=0.25) + phrase([60, 62, 64, 65], start=5.0, step=0.3, length=0.25)


def test_by_default_it_stops_once_the_first_answer_is_played_out():
    out = drive(Engine(LadderModel(), PLAIN), TWO_CALLS, until=20.0)
    # The first call's answer (test_engine's exact answer), then nothing: the second call is not played.
    assert kinds(out) == [(1.8, "note_on", 67, 80), (2.1, "note_off", 67, 0), (2.4, "note_on", 69, 80), (2.7, "note_off", 69, 0)]


def test_run_to_until_plays_the_whole_script_and_answers_every_call():
    out = drive(Engine(LadderModel(), PLAIN), TWO_CALLS, until=20.0, run_to_until=True)
    ons = [t for t, kind, *_ in kinds(out) if kind == "note_on"]
    assert len(ons) == 4 and min(ons) == 1.8 and max(ons) > 6.0  # two answers, the second after the second call
    assert not unclosed(out)


def test_shutdown_closes_what_sounds_where_the_run_stopped():
    # Stopped at 2 s, inside the first answer's first note: only the shutdown can close it.
    cut = drive(Engine(LadderModel(), PLAIN), TWO_CALLS, until=2.0, run_to_until=True)
    assert unclosed(cut)
    out = drive(Engine(LadderModel(), PLAIN), TWO_CALLS, until=2.0, run_to_until=True, shutdown=True)
    assert not unclosed(out) and max(t for t, _ in out) < 2.05
