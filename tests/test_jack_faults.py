"""The live faults of issue 14, end to end: `improv serve` as a process on a private jackd, a
performer and a synth as JACK clients. Each test failed before its fix:

* a keyboard unplugged and plugged in again is heard again (not merely said to be "back");
* a cut-off sysex (``F0 01 02``, no ``F7``) does not silence improv;
* jackd killed and started again: improv says so in one line, rebuilds its clients and ports
  (virtual or named), and answers the next call.

"Heard" is judged on improv's own status line for the new call (``#2 call 3 notes``), so the tail
of an earlier answer can never pass for a new one. No timing is asserted: generous timeouts only.
A key of the performer's that JACK drops at an xrun (``#2 call 2 notes``) is allowed; a lost
note-off holds a call open ``serve.hold_bars`` bars (1.2 s at the tests' 400 bpm), well within them.
"""

from __future__ import annotations

import subprocess
import time

import pytest
from support.fakes import unclosed
from support.jack_server import JackServer, running_jack
from support.serve_process import Lines, Listener, play, serve_cmd, served, stop, tear_down, tiny_checkpoint_file

pytestmark = [pytest.mark.jack, pytest.mark.slow]


def start_jack() -> JackServer:
    server = JackServer()
    reason = server.start()
    if reason is not None:
        pytest.skip(f"JACK cannot run here: {reason}")
    return server


@pytest.fixture
def jack():
    yield from running_jack()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return tiny_checkpoint_file(tmp_path_factory.mktemp("ckpt"))


def answered(lines: Lines, synth: Listener, number: int, notes: int, timeout: float = 20) -> str:
    """Improv heard call ``number`` (its status line says so, printed once the answer has ended,
    with ``notes`` notes, or one fewer: a key JACK dropped at an xrun) and its answer reached the
    synth; the status line."""
    line = lines.wait_for(f"#{number} call ", timeout=timeout)
    assert line.startswith((f"#{number} call {notes} notes", f"#{number} call {notes - 1} notes")), line
    assert synth.wait(lambda got: len(synth.note_ons()) > 0, timeout=timeout), lines.rest()
    return line


def quiet(synth: Listener) -> None:
    """After ``answered`` (the answer has ended: its status line): its last note-offs in flight
    arrive (one JACK dropped never does: no assertion here, the closing is checked where improv's
    tally can tell), nothing new for a while; what the synth got is forgotten."""
    synth.wait(lambda got: unclosed(got) == {}, timeout=3.0)
    synth.wait(lambda got: False, timeout=1.0)
    synth.got.clear()


def test_a_replugged_keyboard_is_heard_again(jack, tiny_checkpoint):
    from improv.io.rtmidi_ports import RtOutput, resolve_api

    api = resolve_api("jack")
    keyboard = RtOutput(api, "keyboard", virtual="keys")
    synth = Listener.virtual("synth")
    proc = subprocess.Popen(
        serve_cmd(tiny_checkpoint, "--in", "keyboard:keys", "--out", "synth:in", "--set", "serve.reconnect_s=0.2"),
        env=jack.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        lines = Lines(proc.stdout)
        lines.wait_for("improv: listening on 'keyboard:keys'", timeout=60)
        play(keyboard, [60, 62, 64])
        answered(lines, synth, 1, 3)
        quiet(synth)
        keyboard.close()  # unplugged
        lines.wait_for("improv: MIDI input 'keyboard:keys' vanished", timeout=10)
        keyboard = RtOutput(api, "keyboard", virtual="keys")  # plugged in again
        lines.wait_for("improv: MIDI input 'keyboard:keys' is back", timeout=10)
        play(keyboard, [67, 65, 64])
        answered(lines, synth, 2, 3)
        stop(proc, lines)
    finally:
        tear_down(proc, keyboard, synth.port)


def test_a_cut_off_sysex_does_not_silence_improv(jack, tiny_checkpoint):
    with served(jack, serve_cmd(tiny_checkpoint, "--virtual")) as s:
        proc, lines, performer, synth = s.proc, s.lines, s.performer, s.listener
        time.sleep(0.5)  # JACK connects on its next cycles
        performer._rt.send_message([0xF0, 0x01, 0x02])  # a dump cut off: no F7, ever
        play(performer, [60, 62, 64, 65])
        line = answered(lines, synth, 1, 4)
        assert " / 0.0 beats" not in line, line  # the notes were heard as played, not all at once
        stop(proc, lines)


@pytest.mark.parametrize("ports", ["virtual", "named"])
def test_improv_comes_back_after_jackd_restarts(tiny_checkpoint, ports):
    from improv.io.rtmidi_ports import RtOutput, resolve_api

    jack = start_jack()
    performer = synth = None
    args = ["--virtual"] if ports == "virtual" else ["--in", "keyboard:keys", "--out", "synth:in"]
    proc = None
    try:
        if ports == "named":
            performer, synth = RtOutput(resolve_api("jack"), "keyboard", virtual="keys"), Listener.virtual("synth")
        proc = subprocess.Popen(serve_cmd(tiny_checkpoint, *args, "--set", "serve.reconnect_s=0.2"), env=jack.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = Lines(proc.stdout)
        banner = lines.wait_for("improv: listening on", timeout=60)
        if ports == "virtual":
            performer = RtOutput(resolve_api("jack"), "performer", port=banner.split("'")[1])
            synth = Listener(banner.split("'")[3])
        time.sleep(0.5)
        play(performer, [60, 62, 64])
        answered(lines, synth, 1, 3)
        quiet(synth)

        jack.crash()  # every client of it is dead
        lines.wait_for("improv: the JACK server stopped", timeout=15)
        performer.abandon()  # they died with it: never closed (see rtmidi_ports.abandon)
        synth.port.abandon()
        performer = synth = None
        assert jack.start() is None  # and is started again, under the same name
        if ports == "named":
            performer, synth = RtOutput(resolve_api("jack"), "keyboard", virtual="keys"), Listener.virtual("synth")
            back = lines.wait_for("improv: the JACK server is back", timeout=30)
            # Rebuilt before or after the keyboard and synth were there again: opened at once, or
            # waited for, as a replugged keyboard is.
            for side, name in (("input", "keyboard:keys"), ("output", "synth:in")):
                if f"waiting for MIDI {side} {name!r}" in back:
                    lines.wait_for(f"improv: MIDI {side} {name!r} is back", timeout=15)
        else:
            back = lines.wait_for("improv: the JACK server is back", timeout=30)
            names = back.split("'")
            performer = RtOutput(resolve_api("jack"), "performer", port=names[1])
            synth = Listener(names[3])
        time.sleep(0.5)
        play(performer, [67, 65, 64])
        answered(lines, synth, 2, 3)
        stop(proc, lines)
        assert not [line for line in lines.rest() if "Traceback" in line or "Jack" in line], lines.rest()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for port in (performer, synth.port if synth else None):
            if port is not None:
                port.close()
        jack.stop()


def test_a_burst_of_midi_clock_does_not_set_the_tempo(jack, tiny_checkpoint):
    from improv.io.rtmidi_ports import RtOutput, resolve_api

    proc = subprocess.Popen(serve_cmd(tiny_checkpoint, "--virtual", "--bpm", "200"), env=jack.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    performer = synth = None
    try:
        lines = Lines(proc.stdout)
        banner = lines.wait_for("improv: listening on", timeout=60)
        performer = RtOutput(resolve_api("jack"), "performer", port=banner.split("'")[1])
        synth = Listener(banner.split("'")[3])
        time.sleep(0.5)
        for _ in range(300):  # a flood of clock pulses, as fast as they can be sent
            performer._rt.send_message([0xF8])
        time.sleep(0.5)
        play(performer, [60, 62, 64])
        line = answered(lines, synth, 1, 3)
        assert " · 200 bpm (config)" in line, line  # was "400 bpm (clock, held)", for good
        stop(proc, lines)
    finally:
        tear_down(proc, performer, synth.port if synth else None)
