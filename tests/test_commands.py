"""What the commands share: every --seed refuses a negative one, JSON without NaN, and serve --record
checked before the session and written however it ends."""

from __future__ import annotations

import json
import math
from pathlib import Path

import mido
import pytest
from support.models import write_random_model

import improv.io.memory_ports
import improv.session.serve
from improv.cli.common import json_ready
from improv.cli.main import build_parser, main
from improv.music.midi import read_midi
from improv.settings.load import load_settings

SMALL = ["model.hidden_size=16", "model.embed_dim=8", "model.num_layers=1"]

SEEDED = [["train"], ["generate", "--out", "x.mid"], ["eval"], ["serve"], ["demo", "--fast"]]


@pytest.mark.parametrize("command", SEEDED, ids=lambda c: c[0])
def test_every_seed_refuses_a_negative_one(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([*command, "--seed", "-1"])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith("error: argument --seed: a seed must be between 0 and 4294967295 (2**32 - 1), got -1")
    assert build_parser().parse_args([*command, "--seed", "7"]).seed == 7


def test_json_ready_turns_every_non_finite_float_into_null():
    value = {"a": math.nan, "b": [1.5, math.inf, {"c": -math.inf}], "d": (2, "x", None), "e": 0.0}
    assert json_ready(value) == {"a": None, "b": [1.5, None, {"c": None}], "d": [2, "x", None], "e": 0.0}


# ---- serve --record -----------------------------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    return write_random_model(tmp_path / "tiny.npz", load_settings(None, SMALL).model)


class FakePorts:
    """``MidiPorts`` without a MIDI system: in-memory input and output."""

    def __init__(self, choice, wake=None) -> None:
        from improv.io.clock import RealClock

        clock = RealClock()
        self.api = -1
        self.input = improv.io.memory_ports.ScriptedInput(clock)
        self.output = improv.io.memory_ports.MemoryOutput(clock)
        self.closed = False

    def describe(self) -> tuple[str, str]:
        return "fake:in", "fake:out"

    def jack_client_priority(self) -> None:
        return None  # not on JACK

    def close(self) -> None:
        self.closed = True


@pytest.fixture(autouse=True)
def no_midi_system(monkeypatch):
    """No MIDI system here: the port names are taken as they are."""
    monkeypatch.setattr(improv.session.serve, "check_names", lambda choice: (None, None))


def test_record_to_an_unwritable_path_fails_before_the_session(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(improv.session.serve, "MidiPorts", lambda *a, **k: pytest.fail("opened ports before checking --record"))
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    records = [blocker / "session.mid", tmp_path / "missing" / "session.mid", tmp_path]
    if Path("/proc/self").exists():
        records.append(Path("/proc/session.mid"))
    for record in records:
        assert main(["serve", "--virtual", "--checkpoint", str(checkpoint), "--record", str(record)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"improv: error: cannot write {record}") and "\n" not in err, err


def test_the_recording_survives_an_error_that_ends_the_session(checkpoint, tmp_path, capsys, monkeypatch):
    ports: list[FakePorts] = []

    def fake_ports(choice, wake=None):
        ports.append(FakePorts(choice, wake))
        return ports[-1]

    def session_that_crashes(loop, **kwargs):
        loop.engine.on_message(mido.Message("note_on", note=60, velocity=90), 1.0)
        loop.engine.on_message(mido.Message("note_off", note=60), 1.5)
        raise RuntimeError("something broke mid-session")

    monkeypatch.setattr(improv.session.serve, "MidiPorts", fake_ports)
    monkeypatch.setattr(improv.session.serve, "serve", session_that_crashes)
    record = tmp_path / "session.mid"
    with pytest.raises(RuntimeError, match="something broke"):
        main(["serve", "--virtual", "--checkpoint", str(checkpoint), "--record", str(record)])
    assert ports[0].closed
    notes = read_midi(record.read_bytes()).notes
    assert [n.pitch for n in notes] == [60]
    assert f"recorded {record}: performer 1 notes" in capsys.readouterr().out


def test_a_normal_session_writes_its_recording(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(improv.session.serve, "MidiPorts", FakePorts)
    monkeypatch.setattr(improv.session.serve, "serve", lambda loop, **kwargs: loop.stats)
    record = tmp_path / "session.mid"
    assert main(["serve", "--virtual", "--checkpoint", str(checkpoint), "--record", str(record)]) == 0
    assert record.read_bytes()[:4] == b"MThd"
    out = capsys.readouterr().out
    assert "0 exchanges" in out and f"recorded {record}" in out
    picture = record.with_suffix(".png")
    assert picture.read_bytes()[:4] == b"\x89PNG" and f"see it: {picture}" in out  # its picture beside it
    programs = sorted(m.program for t in mido.MidiFile(record).tracks for m in t if m.type == "program_change")
    settings = load_settings(None, [])
    assert programs == sorted([settings.serve.performer_program, settings.serve.program])


def test_serve_opens_its_ports_only_after_the_voices_are_loaded_and_warm(checkpoint, monkeypatch):
    import improv.session.serve as session

    order: list[str] = []
    real_load = session.load_voices

    def load(choice, say):
        order.append("names checked" if order == ["names"] else "?")
        out = real_load(choice, say)
        order.append("voices loaded")
        return out

    def ports(choice, wake=None):
        order.append("ports opened")
        return FakePorts(choice, wake)

    monkeypatch.setattr(session, "check_names", lambda choice: order.append("names") or (None, None))
    monkeypatch.setattr(session, "load_voices", load)
    monkeypatch.setattr(session, "MidiPorts", ports)
    monkeypatch.setattr(session, "serve", lambda loop, **kwargs: loop.stats)
    assert main(["serve", "--virtual", "--checkpoint", str(checkpoint)]) == 0
    # A wrong port name fails before anything loads; nothing played while loading reaches improv.
    assert order == ["names", "names checked", "voices loaded", "ports opened"]


def test_virtual_makes_only_the_sides_no_name_was_given_for():
    from improv.io.watched_ports import PortChoice, check_names

    class Lister:
        def inputs(self):
            return ["keyboard:out"]

        def outputs(self):
            return ["FLUID Synth:midi_in", "keyboard:in"]

    assert check_names(PortChoice(out_name="FLUID", virtual=True), Lister()) == (None, "FLUID Synth:midi_in")
    assert check_names(PortChoice(in_name="keyboard", virtual=True), Lister()) == ("keyboard:out", None)
    assert check_names(PortChoice(in_name="keyboard", out_name="FLUID"), Lister()) == ("keyboard:out", "FLUID Synth:midi_in")


def test_serve_monitor_taps_the_loop_and_serves_the_page_while_it_runs(checkpoint, capsys, monkeypatch):
    import urllib.request

    from improv.monitor.taps import TappedInput, TappedOutput

    seen = {}

    def session(loop, **kwargs):
        seen["taps"] = (type(loop.inport), type(loop.outport))
        url = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("improv: live page ")).split()[3]
        with urllib.request.urlopen(url + "state", timeout=10) as r:
            seen["state"] = json.loads(r.read())
        seen["url"] = url
        return loop.stats

    monkeypatch.setattr(improv.session.serve, "MidiPorts", FakePorts)
    monkeypatch.setattr(improv.session.serve, "serve", session)
    assert main(["serve", "--virtual", "--checkpoint", str(checkpoint), "--monitor", "0"]) == 0
    assert seen["taps"] == (TappedInput, TappedOutput)
    assert seen["url"].startswith("http://127.0.0.1:") and seen["state"]["state"]["doing"] == "listening"
    with pytest.raises(OSError):  # the session over, the page is gone
        urllib.request.urlopen(seen["url"], timeout=5)


# ---- a first run without a MIDI system ------------------------------------------------------------


@pytest.mark.parametrize("command", [["ports"], ["serve", "--port", "nosuch"], ["serve", "--virtual"]])
def test_ports_and_serve_without_a_midi_system_say_how_to_get_one(monkeypatch, capsys, command):
    """Where no MIDI system starts (every API's client fails), both a first `improv ports` and a
    first `improv serve` end in one line with the remedy, before any model loads."""
    import improv.io.rtmidi_ports as rtp
    from improv.errors import PortError

    def no_server(kind, api, client_name):
        raise PortError("JACK server not running?")

    monkeypatch.setattr(rtp, "available_apis", lambda: ["jack"])
    monkeypatch.setattr(rtp, "_client", no_server)
    assert main(command) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no MIDI system is running here" in err[0], err
    assert "jackd -d dummy" in err[0] and "modprobe snd-seq" in err[0] and "--virtual" in err[0], err


@pytest.mark.parametrize("command", [["ports", "--api", "jack"], ["serve", "--virtual", "--api", "jack"], ["serve", "--port", "x", "--api", "jack"]])
def test_a_named_midi_system_that_is_not_running_says_how_to_start_one(monkeypatch, capsys, command):
    """README's `improv serve --virtual --api jack` before jackd runs: one line with the remedy
    (before, rtmidi's or libjack's words alone: 'no server answers (status 0x11)'), and before any
    model loads."""
    import improv.io.rtmidi_ports as rtp
    from improv.errors import PortError

    def no_server(kind, api, client_name):
        raise PortError("cannot reach the jack MIDI system: MidiInJack::initialize: JACK server not running?")

    monkeypatch.setattr(rtp, "available_apis", lambda: ["jack"])
    monkeypatch.setattr(rtp, "_client", no_server)
    from improv.io.watched_ports import check_names

    monkeypatch.setattr(improv.session.serve, "check_names", check_names)  # the real one (this module's fixture takes it away)
    monkeypatch.setattr(improv.session.serve, "load_voices", lambda *a, **k: pytest.fail("a model loaded before the ports were checked"))
    assert main(command) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "JACK server not running?" in err[0], err
    assert "jackd -d dummy" in err[0] and "--virtual" in err[0], err


def test_the_virtual_help_names_the_ports_improv_makes():
    serve = next(a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "serve")[1]
    text = " ".join(serve.format_help().split())
    assert "improv:in and improv-01:out" in text, text
