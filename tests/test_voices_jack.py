"""Voices through real MIDI ports (a private jackd): a controller switches the voice between calls,
and the folk voice answers a single-line melody with a single line in its register. `improv serve`
runs as a process with torch made unimportable: the live path needs none."""

from __future__ import annotations

import subprocess
import sys
import time

import mido
import numpy as np
import pytest
from support.jack_server import running_jack
from support.serve_process import Lines, play, stop, tear_down

pytestmark = [pytest.mark.jack, pytest.mark.slow]

NO_TORCH = "import sys; sys.modules['torch'] = None; from improv.cli.main import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture(scope="module")
def jack():
    yield from running_jack()


def tiny(path, seed):
    from support.models import write_random_model

    from improv.settings.sections import ModelSettings

    return write_random_model(path, ModelSettings(hidden_size=32, embed_dim=16, num_layers=1), seed=seed)


def serve(jack, *args):
    proc = subprocess.Popen(
        [sys.executable, "-c", NO_TORCH, "serve", "--api", "jack", "--virtual", "--bpm", "200",
         "--set", "serve.silence_ms=500", "--set", "serve.silence_beats=0", "--set", "serve.estimate_tempo=false", *args],
        env=jack.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines = Lines(proc.stdout)
    banner = lines.wait_for("improv: listening on", timeout=60)
    return proc, lines, banner.split("'")[1], banner.split("'")[3]


def test_a_controller_switches_the_voice_between_calls(jack, tmp_path):
    from improv.io.rtmidi_ports import RtOutput, resolve_api

    first, second = tiny(tmp_path / "first.pt", 0), tiny(tmp_path / "second.pt", 1)
    proc, lines, in_name, _ = serve(jack, "--checkpoint", str(first), "--set", f"voice.live=[{second}]",
                                    "--set", "serve.response_unit=events", "--set", "serve.response_length=4")  # fmt: skip
    performer = RtOutput(resolve_api("jack"), "performer", port=in_name)
    try:
        assert "voice first (untrained) (of first, second: CC 24 or Program Change switches)" in lines.seen[-1]
        play(performer, [60, 62, 64, 65])
        assert "· first (" in lines.wait_for("#1 call", timeout=20)
        for value in (100, 115, 127):  # the knob turned to its top (the last voice), as a knob sends it: values
            performer.send(mido.Message("control_change", control=24, value=value))  # 30 ms apart, in JACK
            time.sleep(0.03)  # cycles of their own: one dropped at an xrun is not the switch
        time.sleep(0.3)
        play(performer, [67, 65, 64, 62])
        assert "· second (" in lines.wait_for("#2 call", timeout=20)
        for _ in range(2):  # Program Change 0: the first again (pressed twice, a cycle apart: no harm, and
            performer.send(mido.Message("program_change", program=0))  # one dropped at an xrun is not the switch)
            time.sleep(0.03)
        time.sleep(0.3)
        play(performer, [60, 64, 67, 72])
        assert "· first (" in lines.wait_for("#3 call", timeout=20)
        stop(proc, lines)
    finally:
        tear_down(proc, performer)


def most_at_once(notes: list[tuple[float, mido.Message]]) -> int:
    """The most notes sounding at once, counting only notes whose note-off was heard before the
    same key struck again: JACK drops a whole cycle at an xrun (a CI run lost one note-off and
    read a single line as two notes at once); an overlap improv played has both its note-offs."""
    start: dict[int, float] = {}
    spans: list[tuple[float, float]] = []
    for t, m in notes:
        if m.type == "note_on" and m.velocity > 0:
            start[m.note] = t  # a key struck again without its note-off: the first is dropped
        elif m.note in start:
            spans.append((start.pop(m.note), t))
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])  # an off before an on at one time
    most = level = 0
    for _, step in edges:
        level += step
        most = max(most, level)
    return most


def test_most_at_once_counts_overlaps_and_skips_a_lost_note_off():
    on = lambda n, t: (t, mido.Message("note_on", note=n, velocity=80))  # noqa: E731
    off = lambda n, t: (t, mido.Message("note_off", note=n))  # noqa: E731
    assert most_at_once([on(60, 0), off(60, 1), on(62, 1), off(62, 2)]) == 1
    assert most_at_once([on(60, 0), on(62, 0.5), off(60, 1), off(62, 2)]) == 2  # a real overlap
    assert most_at_once([on(60, 0), on(62, 1), off(62, 2), on(64, 2), off(64, 3)]) == 1  # 60's note-off lost


def test_folk_answers_a_single_line_with_a_single_line_in_its_register(jack):
    from improv.io.rtmidi_ports import RtInput, RtOutput, resolve_api
    from improv.model.voices import voice_names

    if "folk" not in voice_names():
        pytest.fail("the folk voice is not shipped")
    proc, lines, in_name, out_name = serve(jack, "--voice", "folk", "--seed", "3")
    api = resolve_api("jack")
    performer = RtOutput(api, "performer", port=in_name)
    listener = RtInput(api, "listener", port=out_name)
    heard: list[tuple[float, mido.Message]] = []
    try:
        melody = [67, 69, 71, 72, 74, 72, 71, 69, 67, 71, 74, 79]  # G major, around G4-G5, one note at a time
        play(performer, melody, step=0.3, length=0.25)
        lines.wait_for("#1 call", timeout=30)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            heard.extend(listener.iter_stamped())
            time.sleep(0.01)
        stop(proc, lines)
    finally:
        tear_down(proc, performer, listener)
    notes = [(t, m) for t, m in heard if m.type in ("note_on", "note_off")]
    ons = [m.note for _, m in notes if m.type == "note_on" and m.velocity > 0]
    assert len(ons) >= 4
    assert most_at_once(notes) == 1, "two notes at once: not a single line"
    assert abs(float(np.median(ons)) - float(np.median(melody))) <= 7, (ons, melody)


def test_answers_dynamics_follow_soft_loud_and_crescendo_calls_over_real_ports(jack):
    """The folk voice's corpus has no dynamics: the answer's are modelled from the call
    (``realtime.dynamics``). Over real ports: a soft call gets a soft answer, a loud one a loud
    answer, a crescendo a rising one; every answer note struck is released."""
    from support.serve_process import Listener

    from improv.io.rtmidi_ports import RtOutput, resolve_api

    proc, lines, in_name, out_name = serve(jack, "--voice", "folk", "--seed", "5")
    performer = RtOutput(resolve_api("jack"), "performer", port=in_name)
    listener = Listener(out_name)
    melody = [67, 69, 71, 72, 74, 72, 71, 69, 67, 71, 74, 79]
    calls = {"soft": [35] * 12, "loud": [110] * 12, "crescendo": list(np.linspace(30, 120, 12).round().astype(int))}
    answers: dict[str, list[int]] = {}
    try:
        for k, (name, velocities) in enumerate(calls.items(), start=1):
            for note, velocity in zip(melody, velocities):
                performer.send(mido.Message("note_on", note=note, velocity=int(velocity)))
                time.sleep(0.25)
                performer.send(mido.Message("note_off", note=note))
                time.sleep(0.05)
            played = time.perf_counter()
            lines.wait_for(f"#{k} call", timeout=30)
            time.sleep(1.0)  # the answer's last note-offs
            listener.poll()
            answers[name] = [m.velocity for _, m in listener.note_ons(after=played)]
            listener.got.clear()
        stop(proc, lines)
        listener.poll()
    finally:
        tear_down(proc, performer, listener.port)
    soft, loud, rising = (np.array(answers[n], dtype=float) for n in ("soft", "loud", "crescendo"))
    assert min(len(soft), len(loud), len(rising)) >= 4, answers
    assert soft.mean() <= 55 and loud.mean() >= 90, answers  # the level is the call's, not the voice's flat one
    assert soft.std() > 0 and loud.std() > 0, answers  # phrased: accents, an arc, a softer end
    assert np.polyfit(np.arange(len(rising)), rising, 1)[0] > 0 and rising.mean() >= np.mean(calls["crescendo"]) - 5, answers
