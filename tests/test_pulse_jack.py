"""In time with the performer, end to end: `improv serve` with no --bpm, calls played through a
private jackd at 56, 120 and 184 bpm, answers received by a listener. Skipped where jackd cannot
start.

What is checked is where the answer's notes arrive against the performer's grid (sixteenths and
triplets of the beat the performer played, extrapolated past the call), with margins a loaded
two-core machine cannot eat; the figures themselves are measured by benchmarks/bench_pulse.py.
Each answer is waited for by improv's status line (said once it has ended); an answer whose
first note JACK dropped at an xrun (fewer notes arrived than the line says were played) is judged
on its grid, not on its first note.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import time

import mido
import numpy as np
import pytest
from support.jack_server import running_jack
from support.serve_process import send_on_time, served

pytestmark = [pytest.mark.jack, pytest.mark.slow]

CALL = [0, 0.5, 1, 1.5, 2, 3, 3.5, 4, 5, 6]  # eighths and quarters, in beats
PITCHES = [60, 62, 64, 65, 67, 65, 64, 62, 64, 60]


@pytest.fixture(scope="module")
def jack():
    yield from running_jack()


def perform(out, bpm: float) -> tuple[float, float]:
    """Play the call at ``bpm`` on a busy-waited schedule; returns (first onset, last note-off)."""
    beat = 60 / bpm
    events = []
    for b, p in zip(CALL, PITCHES):
        events.append((b * beat, mido.Message("note_on", note=p, velocity=100 if b % 2 == 0 else 70)))
        events.append((b * beat + 0.45 * beat, mido.Message("note_off", note=p)))
    start = time.perf_counter() + 0.05
    return start, send_on_time(out, events, start)


def grid_ms(t: float, origin: float, beat: float) -> float:
    x = (t - origin) / beat
    f = x - math.floor(x)
    return min(abs(f - g) for g in (0, 0.25, 1 / 3, 0.5, 2 / 3, 0.75, 1)) * beat * 1000


def test_answers_on_the_performers_grid_at_any_tempo_without_bpm(jack):
    cmd = [
        sys.executable, "-m", "improv", "serve", "--api", "jack", "--voice", "folk", "--virtual",
        "--set", "serve.response_unit=events", "--set", "serve.response_length=8", "--set", "serve.silence_ms=300",
    ]  # fmt: skip
    with served(jack, cmd) as s:
        lines, performer, listener = s.lines, s.performer, s.listener
        errors, firsts = [], []
        for number, bpm in enumerate((56, 120, 184), start=1):
            origin, end = perform(performer, bpm)
            status = lines.wait_for(f"#{number} call", timeout=30)  # said once the answer has ended
            listener.wait(lambda got: False, timeout=0.3)  # its last messages in flight
            assert len(listener.note_ons(after=end)) >= 4, lines.rest()
            heard = float(re.search(r"· (\d+) bpm", status).group(1))
            ratio = heard / bpm
            assert min(abs(ratio / x - 1) for x in (1, 2, 0.5)) < 0.04, status
            beat = 60 / bpm / (2 if ratio > 1.5 else 1)  # heard at double tempo: that level's grid
            answer = [t for t, m in listener.note_ons(after=end)]
            errors += [grid_ms(t, origin, beat) for t in answer]
            if len(answer) == int(re.search(r"answer (\d+) notes", status).group(1)):  # (its first note not lost to an xrun)
                firsts.append(min(abs((answer[0] - origin) / (60 / bpm) - k) for k in range(200)) * 60 / bpm * 1000)  # the performer's beat
            listener.got.clear()
            time.sleep(7.0)  # a long pause (PAUSE_S, 6 s, after the answer ended): the next tempo is heard anew
        print(f"grid: median {np.median(errors):.1f} ms, p90 {np.percentile(errors, 90):.1f} ms; first notes {np.round(firsts, 1)} ms off the beat")
        assert np.median(errors) < 25 and len(firsts) >= 2 and max(firsts) < 60, (errors, firsts)


def test_calibrate_measures_a_jack_loop_and_writes_the_setting(jack, tmp_path):
    """`improv calibrate` through a loop (a client that sends back what it gets, as a synth's MIDI
    thru does): the round trip is measured and written where `--config` reads it."""
    import rtmidi

    from improv.settings.load import load_settings

    loop_in = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "thru-in")
    loop_out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "thru-out")
    loop_out.open_virtual_port("thru")
    loop_in.open_virtual_port("in")
    loop_in.set_callback(lambda event, data=None: loop_out.send_message(event[0]))
    config = tmp_path / "latency.yaml"
    config.write_text("serve:\n  bpm: 90.0\n")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "improv", "calibrate", "--api", "jack", "--out", "thru-in:in", "--in", "thru-out:thru", "--notes", "12", "--write", str(config)],
            env=jack.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert re.search(r"\b1[12] of 12 notes came back", done.stdout), done.stdout  # (one may be lost to an xrun)
        settings = load_settings(config).serve
        assert settings.bpm == 90.0  # the file's other settings are kept
        assert 0 < settings.output_latency_ms < 100
        wrong = subprocess.run([sys.executable, "-m", "improv", "calibrate", "--api", "jack", "--out", "thru-in:in", "--in", "nosuch"], env=jack.env, capture_output=True, text=True, timeout=60)
        assert wrong.returncode == 2 and "nosuch" in wrong.stderr
    finally:
        loop_in.close_port()
        loop_out.close_port()
