"""Ableton Link as the engine sees it (realtime/link_follower.py), in simulated time with a fake
session: while improv follows, the answer's tempo and beat are the session's; while it leads (alone,
or the session still at its tempo) it answers on the performer's pulse and publishes it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mido
import pytest
from support.fakes import FakeLink, LadderModel, phrase, simulate, unclosed

from improv.errors import ConfigError
from improv.realtime.engine import Engine
from improv.settings.load import section_from_dict
from improv.settings.serve_section import ServeSettings

MECHANICS = dict(silence_ms=600.0, silence_beats=0.0, answer_lead_beats=0.0, phrase_ending=False, rule_dynamics=0.0, keep_key=False)
# A call of quarters at 100 bpm (0.6 s apart) from 1.23 s: decided at 1.23 + 1.8 + 0.5 + 0.6 = 4.13.
CALL = phrase([60, 62, 64, 65], start=1.23, step=0.6, length=0.5)


def ons(out):
    return [t for t, m in out if m.type == "note_on" and m.velocity > 0]


def beats_off_grid(times, origin, beat_s, per=1.0):
    """How far (in beats) each time is from the grid of ``per`` beats through ``origin``."""
    out = []
    for t in times:
        k = (t - origin) / beat_s / per
        out.append(abs(k - round(k)) * per)
    return out


def run(link, script=CALL, until=12.0, **settings):
    e = Engine(LadderModel(), ServeSettings(**{**MECHANICS, **settings}), link=link)
    out = simulate(e, script, until=until)
    return e, out


def test_with_a_peer_the_answer_is_on_the_sessions_beat_and_tempo():
    link = FakeLink(bpm=90.0, downbeat=0.07, peers=1)  # the session: 90 bpm, not the call's 100
    e, out = run(link)
    times = ons(out)
    assert len(times) >= 3 and unclosed(out) == {}
    assert max(beats_off_grid(times, 0.07, 60 / 90)) < 1e-6  # every onset on the session's beat
    (report,) = e.take_reports()
    assert report.tempo_source == "Link, 1 peer" and report.bpm == pytest.approx(90.0)
    assert report.grid == "beat of the Link session"
    # The ladder steps one beat per note: the answer runs at the session's tempo, not the call's.
    assert [round(b - a, 6) for a, b in zip(times, times[1:])] == [round(60 / 90, 6)] * (len(times) - 1)
    assert link.leads == []  # a session that was there when improv joined is theirs: nothing published
    # Without Link the same call is answered on its own beat (1.23 + k * 0.6): the session moved it.
    plain = ons(run(None)[1])
    assert max(beats_off_grid(plain, 1.23, 0.6)) < 1e-6 and plain[0] != times[0]


def test_entry_bar_enters_on_the_sessions_downbeat_in_its_quantum():
    for quantum in (4, 3):
        link = FakeLink(bpm=120.0, downbeat=0.2, peers=2, quantum=quantum)
        e, out = run(link, entry="bar")
        first = ons(out)[0]
        assert beats_off_grid([first], 0.2, 0.5, per=quantum) == [pytest.approx(0.0, abs=1e-6)], quantum
        (report,) = e.take_reports()
        assert report.grid == "downbeat of the Link session" and report.tempo_source == "Link, 2 peers"


def test_a_peers_tempo_change_is_followed_from_the_next_answer():
    link = FakeLink(bpm=120.0, downbeat=0.0, peers=1)
    e = Engine(LadderModel(), ServeSettings(**MECHANICS), link=link)
    first = ons(simulate(e, CALL, until=9.0))
    assert max(beats_off_grid(first, 0.0, 0.5)) < 1e-6
    link.bpm, link.downbeat = 75.0, 9.1  # the peer slows down
    second = ons(simulate(e, phrase([60, 62, 64, 65], start=10.0, step=0.6, length=0.5), until=22.0, start=9.0))
    assert second and max(beats_off_grid(second, 9.1, 0.8)) < 1e-6
    assert e.bpm == pytest.approx(75.0) and e.tempo_source == "Link, 1 peer"


def test_link_wins_over_a_midi_clocks_transport():
    ticks = [(0.0, mido.Message("start"))] + [(0.01 + k / 48, mido.Message("clock")) for k in range(48 * 8)]
    link = FakeLink(bpm=90.0, downbeat=0.07, peers=1)
    e, out = run(link, script=CALL + ticks, until=8.0)
    assert max(beats_off_grid(ons(out), 0.07, 60 / 90)) < 1e-6
    assert e.take_reports()[0].grid == "beat of the Link session"


def test_alone_improv_hears_the_performer_and_publishes_tempo_and_bar():
    link = FakeLink(bpm=100.0, downbeat=0.0, peers=0)  # improv made the session at serve.bpm
    call = phrase([60, 62, 64, 65, 67, 65, 64, 62], start=1.23, step=0.5, length=0.4)  # 120 bpm
    e, out = run(link, script=call, until=12.0)
    plain_e, plain = run(None, script=call, until=12.0)
    assert ons(out) == ons(plain)  # alone, Link changes nothing in the answer
    (report,) = e.take_reports()
    assert report.tempo_source == "estimate" and report.bpm == pytest.approx(120.0, rel=0.01)
    ((bpm, downbeat),) = link.leads  # the performer's tempo, with a bar line on their beat
    assert bpm == pytest.approx(report.bpm) and beats_off_grid([downbeat], 1.23, 0.5) == [pytest.approx(0.0, abs=0.02)]
    # The same call again, at the same tempo and beat: nothing new to publish.
    simulate(e, phrase([60, 62, 64, 65, 67, 65, 64, 62], start=13.23, step=0.5, length=0.4), until=24.0, start=12.0)
    assert len(link.leads) == 1


def test_a_peer_that_joins_improvs_session_keeps_following_the_performer():
    link = FakeLink(bpm=100.0, downbeat=0.0, peers=0)
    e = Engine(LadderModel(), ServeSettings(**MECHANICS), link=link)
    simulate(e, phrase([60, 62, 64, 65, 67, 65, 64, 62], start=1.23, step=0.5, length=0.4), until=12.0)
    assert len(link.leads) == 1 and link.bpm == pytest.approx(120.0, rel=0.01)
    link.peers = 1  # a drum app joins and takes improv's tempo: improv still leads
    faster = phrase([60, 62, 64, 65, 67, 65, 64, 62], start=13.0, step=0.4, length=0.3)  # 150 bpm
    simulate(e, faster, until=24.0, start=12.0)
    assert len(link.leads) == 2 and link.leads[-1][0] == pytest.approx(150.0, rel=0.01)
    assert e.take_reports()[-1].tempo_source == "estimate"
    # The peer changes the tempo: from now on improv follows it and publishes nothing.
    link.bpm, link.downbeat = 96.0, 24.05
    e2_out = simulate(e, phrase([60, 62, 64, 65], start=25.0, step=0.6, length=0.5), until=36.0, start=24.0)
    assert len(link.leads) == 2 and max(beats_off_grid(ons(e2_out), 24.05, 0.625)) < 1e-6
    assert e.take_reports()[-1].tempo_source == "Link, 1 peer"
    # Alone again: improv leads again, on the performer's pulse.
    link.peers = 0
    simulate(e, phrase([60, 62, 64, 65, 67, 65, 64, 62], start=37.0, step=0.5, length=0.4), until=48.0, start=36.0)
    assert len(link.leads) == 3 and e.take_reports()[-1].tempo_source == "estimate"
    # A peer joins improv's session again (its tempo unchanged): improv still leads.
    link.peers = 1
    simulate(e, phrase([60, 62, 64, 65, 67, 65, 64, 62], start=49.0, step=0.4, length=0.3), until=60.0, start=48.0)
    assert len(link.leads) == 4 and e.take_reports()[-1].tempo_source == "estimate"


def test_a_session_left_alone_is_improvs():
    from improv.realtime.link_follower import LinkFollower

    link = FakeLink(bpm=128.0, peers=1)  # improv joins someone's session: it follows
    follower = LinkFollower(link)
    assert follower.grid(0.0) is not None
    link.peers = 0  # they leave: the session (still at 128) is improv's alone
    assert follower.grid(1.0) is None
    link.peers = 1  # a peer joins it and takes its tempo: improv leads, though it never published
    assert follower.grid(2.0) is None and "leading" in follower.describe(2.0)
    link.bpm = 100.0  # the peer changes the tempo: theirs
    assert follower.grid(3.0) is not None and "following" in follower.describe(3.0)


def test_a_stale_view_is_not_followed():
    link = FakeLink(bpm=90.0, downbeat=0.07, peers=1)
    link.at = 0.0  # the shell's thread stopped updating at 0 s: by the call's end it is 4 s old
    e, out = run(link)
    plain = ons(run(None)[1])
    assert ons(out) == plain and link.leads == []
    assert e.take_reports()[0].tempo_source != "Link, 1 peer"


def test_link_settings_are_checked():
    assert ServeSettings().link is False and ServeSettings().link_quantum == 4
    with pytest.raises(ConfigError, match="link_quantum"):
        section_from_dict(ServeSettings, {**dataclasses.asdict(ServeSettings()), "link_quantum": 0}, "serve")


def test_describe_says_peers_tempo_and_role():
    link = FakeLink(bpm=120.0, peers=0)
    e = Engine(LadderModel(), ServeSettings(**MECHANICS), link=link)
    assert e.link.describe(0.0) == "Link: alone, leading at 120.0 bpm"
    link.peers, link.bpm = 2, 128.0
    assert e.link.describe(0.0) == "Link: 2 peers, following at 128.0 bpm"


def test_the_monitor_page_shows_the_link_session():
    from improv.monitor.taps import snapshot

    link = FakeLink(bpm=120.0, peers=1)
    e = Engine(LadderModel(), ServeSettings(**MECHANICS), link=link)
    e.due(0.0)
    state = snapshot(e, 0.0)
    assert state["link"] == "Link: 1 peer, following at 120.0 bpm" and state["tempo_source"] == "Link, 1 peer"
    assert state["bpm"] == 120.0
    assert snapshot(Engine(LadderModel(), ServeSettings(**MECHANICS)), 0.0)["link"] is None
    page = (Path(__file__).resolve().parent.parent / "improv" / "monitor" / "page.html").read_text()
    assert "s.link" in page


def test_a_lead_not_yet_seen_in_the_view_is_not_taken_for_a_peers_change():
    """The shell commits a lead on its own thread: for a moment the view still shows the tempo
    it replaced. That is not a peer changing the tempo."""
    from improv.music.pulse import Pulse
    from improv.realtime.link_follower import LinkFollower

    class Slow(FakeLink):
        def lead(self, bpm, downbeat):
            self.leads.append((bpm, downbeat))  # applied later, by apply()

        def apply(self):
            self.bpm = self.leads[-1][0]

    link = Slow(bpm=100.0, peers=0)
    link.at = 0.0
    follower = LinkFollower(link)
    link.peers = 1  # a peer joined improv's session: improv leads
    assert follower.grid(0.0) is None
    assert follower.lead(Pulse(bpm=132.0, origin=0.0), 0.0)
    assert follower.grid(0.01) is None  # the view still says 100: improv's own old tempo
    link.apply()
    link.at = 0.02
    assert follower.grid(0.02) is None and "leading at 132.0" in follower.describe(0.02)
    link.bpm, link.at = 90.0, 0.8  # now a peer changes it
    assert follower.grid(0.8) is not None


def test_accompany_keeps_the_sessions_beat():
    """Play along under Link: the chords go on the session's beat, not the performer's."""
    line = phrase([67, 67, 69, 71, 71, 69, 67, 66, 64, 66, 67, 67], start=1.0, step=0.6, length=0.54)
    link = FakeLink(bpm=90.0, downbeat=0.11, peers=1)
    e = Engine(LadderModel(), ServeSettings(mode="accompany"), seed=3, link=link)
    out = simulate(e, line, until=10.0)
    onsets = [n.onset for n, _ in e._band.played]
    assert len(onsets) > 8 and max(beats_off_grid(onsets, 0.11, 60 / 90)) < 1e-6
    assert not unclosed(out + e.shutdown(30.0))
