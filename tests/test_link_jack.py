"""`improv serve --link` end to end: a private jackd, a performer and a listener on JACK, and a
second Ableton Link peer in this process (as a drum machine would be). Alone in the session, improv
publishes the tempo and beat it heard from the performer, and a peer that joins plays on them;
once the peer sets the tempo, improv's answers land on the peer's beat, not the performer's.

Skipped, saying why, without LinkPython-extern (`pip install -e ".[link]"`), where two Link
peers cannot meet on this machine, or where jackd cannot start. Margins are ones a loaded
two-core machine cannot eat; benchmarks/bench_link.py measures the figures. Each answer is waited
for by improv's status line (said once it has ended), not by a lull in what arrives.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import mido
import numpy as np
import pytest
from support.jack_server import running_jack
from support.link_peer import Peer, peers_meet
from support.serve_process import Lines, Listener, send_on_time, tear_down

pytestmark = [pytest.mark.jack, pytest.mark.slow]

CALL = [0, 0.5, 1, 1.5, 2, 3, 3.5, 4, 5, 6]  # eighths and quarters, in beats
PITCHES = [60, 62, 64, 65, 67, 65, 64, 62, 64, 60]
GRID = (0, 0.25, 1 / 3, 0.5, 2 / 3, 0.75, 1)


@pytest.fixture(scope="module")
def jack():
    why = peers_meet()
    if why is not None:
        pytest.skip(why)
    yield from running_jack()


def perform(out, bpm: float, start: float) -> tuple[list[float], float]:
    """The call at ``bpm`` from ``start`` (perf_counter), busy-waited; (onsets, last note-off)."""
    beat = 60 / bpm
    events = []
    for b, p in zip(CALL, PITCHES):
        events.append((b * beat, mido.Message("note_on", note=p, velocity=100 if b % 2 == 0 else 70)))
        events.append((b * beat + 0.45 * beat, mido.Message("note_off", note=p)))
    return [start + b * beat for b in CALL], send_on_time(out, events, start)


def off_grid_ms(beat: float, beat_s: float, grid=GRID) -> float:
    """How far a session beat position lies from the nearest point of ``grid`` (fractions of a beat), in ms."""
    f = beat - np.floor(beat)
    return min(abs(f - g) for g in grid) * beat_s * 1000


def answer(listener: Listener, lines: Lines, number: int, after: float) -> tuple[list[float], str, bool]:
    """The answer's onsets, once improv's status line for exchange ``number`` says it has ended;
    the line; whether every note it played arrived (JACK may drop one at an xrun: then the first
    onset heard may not be the answer's first)."""
    status = lines.wait_for(f"#{number} call", timeout=30)
    listener.wait(lambda got: False, timeout=0.3)  # its last messages in flight
    times = [t for t, _ in listener.note_ons(after=after)]
    assert len(times) >= 4, (times, status)
    return times, status, len(times) == int(re.search(r"answer (\d+) notes", status).group(1))


def test_serve_link_publishes_alone_and_follows_the_peer(jack):
    from improv.io.rtmidi_ports import RtOutput, resolve_api

    cmd = [
        sys.executable, "-m", "improv", "serve", "--link", "--api", "jack", "--voice", "folk", "--virtual",
        "--set", "serve.response_unit=events", "--set", "serve.response_length=8", "--set", "serve.silence_ms=300",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=jack.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    listener = performer = peer = None
    try:
        lines = Lines(proc.stdout)
        banner = lines.wait_for("improv: listening on", timeout=60)
        assert "Link: alone, leading at 100.0 bpm" in banner, banner
        in_name, out_name = banner.split("'")[1], banner.split("'")[3]
        performer = RtOutput(resolve_api("jack"), "performer", port=in_name)
        listener = Listener(out_name)

        # 1. Alone: improv hears the performer at 120 and publishes it; a peer that joins takes it.
        onsets, end = perform(performer, 120, time.perf_counter() + 0.05)
        _, status, _ = answer(listener, lines, 1, end)
        heard = float(re.search(r"· (\d+) bpm \(estimate\)", status).group(1))
        assert min(abs(heard / 120 / x - 1) for x in (1, 2, 0.5)) < 0.04, status
        time.sleep(1.0)  # improv's session is the older one: the peer joins it (Link keeps the older)
        peer = Peer(60.0)
        assert peer.wait_for_peers(1), "the peer never found improv"
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and abs(peer.tempo() - heard) > 1.5:
            time.sleep(0.05)
        assert abs(peer.tempo() - heard) < 1.5, (peer.tempo(), heard)  # the status line rounds
        beat_s = 60 / peer.tempo()
        published = [off_grid_ms(peer.beat_at(t), beat_s, (0, 1)) for t, b in zip(onsets, CALL) if b == int(b)]  # the performer's beats
        print(f"published: {peer.tempo():.2f} bpm; the performer's beats {np.round(published, 1)} ms off the peer's")
        assert np.median(published) < 30, published

        # 2. The peer sets 90 bpm: the next answer is on the peer's beat, whatever the performer plays.
        peer.set_tempo(90.0)
        time.sleep(0.3)
        listener.got.clear()
        start = time.perf_counter() + 0.05
        start += (0.37 - (peer.beat_at(start) % 1)) % 1 * (60 / 90)  # the call off the peer's beat (0.37 in)
        _, end = perform(performer, 120, start)
        times, status, whole = answer(listener, lines, 2, end)
        assert "90 bpm (Link, 1 peer)" in status, status
        errors = [off_grid_ms(peer.beat_at(t), 60 / 90) for t in times]
        first = off_grid_ms(peer.beat_at(times[0]), 60 / 90, (0, 1))
        print(f"followed: answer onsets median {np.median(errors):.1f} ms, p90 {np.percentile(errors, 90):.1f} ms off the peer's grid; first note {first:.1f} ms off its beat")
        assert np.median(errors) < 25 and (first < 60 or not whole), (errors, first)  # (a first note lost: its grid only)
        proc.send_signal(2)
        assert proc.wait(timeout=30) == 0, lines.rest()
    finally:
        tear_down(proc, listener.port if listener else None, performer)
        if peer is not None:
            peer.close()
