"""The live monitor: each page control is the message its knob sends, the page's access rules
(loopback names, JSON controls from its own page, a token elsewhere), the taps leave the session
unchanged while they post its notes, lines and states, a late page gets the recent past, and on
a real-time session the stream shows what happens and a control reaches the engine."""

from __future__ import annotations

import dataclasses
import http.client
import json
import time
import urllib.request

import pytest
from support.fakes import LadderModel, kinds, phrase
from support.live_session import LiveSession

from improv.io.clock import FakeClock
from improv.io.memory_ports import MemoryOutput, ScriptedInput
from improv.monitor.controls import ControlError, control_message
from improv.monitor.feed import EVENTS_MAX, Feed, Hub
from improv.monitor.live import LiveMonitor
from improv.monitor.server import MonitorServer, access_token, is_loopback
from improv.monitor.taps import TappedInput, TappedOutput, tapped_status
from improv.realtime.controls import Controls
from improv.realtime.engine import Engine
from improv.session.loop import ServeLoop
from improv.settings.serve_section import ServeSettings

PLAIN = ServeSettings(estimate_tempo=False, keep_key=False, response_unit="events")
CALL = phrase([60, 62, 64, 65], step=0.3, length=0.25)


# ---- controls ----------------------------------------------------------------------------------


def test_each_control_is_the_message_its_knob_sends():
    s = ServeSettings()
    knobs = Controls(s, 3)
    for name, values, tolerance in (("temperature", (0.25, 0.5, 1.0, 1.7, 2.0), 0.02), ("length", (0.25, 0.7, 1.0, 3.9), 0.02), ("imitation", (0.0, 0.5, 1.0), 0.005), ("density", (0.25, 0.7, 1.0, 3.9), 0.02)):
        for value in values:
            msg = control_message(name, value, s, 3)
            action = knobs.control(msg.control, msg.value)
            assert action.kind == name and action.value == pytest.approx(value, rel=tolerance, abs=tolerance)
    for i in range(3):
        assert knobs.program(control_message("voice", i, s, 3).program).value == i
        by_knob = control_message("voice", i, dataclasses.replace(s, program_change_voice=False), 3)
        assert knobs.control(by_knob.control, by_knob.value).value == i
    for name in ("panic", "end_call"):
        msg = control_message(name, None, s, 3)
        assert knobs.control(msg.control, msg.value).kind == name


@pytest.mark.parametrize(
    "name, value, settings, words",
    [
        ("temperature", 1.0, {"cc_temperature": -1}, "the temperature control is off"),
        ("voice", 0, {}, "the voice control is off"),  # one voice: nothing to switch to
        ("volume", 1.0, {}, "unknown control 'volume'"),
        ("temperature", "hot", {}, "bad value for temperature: 'hot'"),
        ("length", True, {}, "bad value for length"),
        ("imitation", float("nan"), {}, "bad value for imitation"),
    ],
)
def test_controls_that_are_off_or_bad_are_refused(name, value, settings, words):
    with pytest.raises(ControlError, match=words):
        control_message(name, value, dataclasses.replace(ServeSettings(), **settings), 1)
    with pytest.raises(ControlError, match="no voice number"):
        control_message("voice", 1.5, ServeSettings(), 3)


# ---- access ------------------------------------------------------------------------------------


def test_loopback_addresses_need_no_token_others_get_one():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.20", "::", "example.com"))
    assert access_token("127.0.0.1") is None
    a, b = access_token("0.0.0.0"), access_token("0.0.0.0")
    assert a != b and len(a) >= 20


def request(server, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def served():
    calls = []

    def control(name, value):
        if name == "bad":
            raise ControlError("the bad control is off in this session")
        calls.append((name, value))

    servers = []

    def make(token=None):
        server = MonitorServer(Hub(Feed(), time.perf_counter, 20.0), control, "127.0.0.1", 0, token)
        server.start()
        servers.append(server)
        return server

    yield make, calls
    for server in servers:
        server.close()


def test_a_local_monitor_answers_only_its_own_names_and_its_own_page(served):
    make, calls = served
    server = make()
    status, body = request(server, "GET", "/")
    assert status == 200 and b"<title>improv" in body
    assert request(server, "GET", "/", headers={"Host": f"localhost:{server.port}"})[0] == 200
    assert request(server, "GET", "/", headers={"Host": f"attacker.example:{server.port}"})[0] == 403  # DNS rebinding
    assert request(server, "GET", "/nothing")[0] == 404
    json_headers = {"Content-Type": "application/json"}
    assert request(server, "POST", "/control", json.dumps({"control": "panic"}), json_headers)[0] == 200
    assert request(server, "POST", "/control", json.dumps({"control": "temperature", "value": 0.5}), {**json_headers, "Origin": f"http://127.0.0.1:{server.port}"})[0] == 200
    assert calls == [("panic", None), ("temperature", 0.5)]
    # A page elsewhere cannot send one: a form is not JSON, and a script of another origin is refused.
    assert request(server, "POST", "/control", "control=panic", {"Content-Type": "application/x-www-form-urlencoded"})[0] == 415
    assert request(server, "POST", "/control", json.dumps({"control": "panic"}), {**json_headers, "Origin": "http://attacker.example"})[0] == 403
    status, body = request(server, "POST", "/control", json.dumps({"control": "bad"}), json_headers)
    assert status == 400 and json.loads(body) == {"error": "the bad control is off in this session"}
    assert request(server, "POST", "/control", "{not json", json_headers)[0] == 400
    assert request(server, "POST", "/control", json.dumps(["panic"]), json_headers)[0] == 400
    assert len(calls) == 2


def test_a_monitor_with_a_token_refuses_every_request_without_it(served):
    make, calls = served
    server = make(token="s3cret-token")
    for method, path in (("GET", "/"), ("GET", "/events"), ("GET", "/state"), ("POST", "/control")):
        assert request(server, method, path, json.dumps({"control": "panic"}), {"Content-Type": "application/json"})[0] == 403
        assert request(server, method, path + "?token=wrong", json.dumps({"control": "panic"}), {"Content-Type": "application/json"})[0] == 403
    assert calls == []
    assert request(server, "GET", "/?token=s3cret-token", headers={"Host": "stage-laptop.local"})[0] == 200
    assert request(server, "GET", "/state", headers={"X-Improv-Token": "s3cret-token"})[0] == 200
    assert request(server, "POST", "/control?token=s3cret-token", json.dumps({"control": "panic"}), {"Content-Type": "application/json"})[0] == 200
    assert calls == [("panic", None)]


def test_another_address_is_served_with_a_token_in_its_address():
    live = LiveMonitor("0.0.0.0", 0)
    try:
        assert live.server.token and live.url.endswith(f"/?token={live.server.token}")
        assert "with the token" in live.describe()
        assert request(live.server, "GET", "/")[0] == 403
    finally:
        live.close()
    local = LiveMonitor("127.0.0.1", 0)
    try:
        assert local.server.token is None and local.url == f"http://127.0.0.1:{local.server.port}/"
        assert "this machine only" in local.describe()
    finally:
        local.close()


def test_a_busy_port_is_a_one_line_error():
    first = LiveMonitor("127.0.0.1", 0)
    try:
        with pytest.raises(Exception, match=rf"cannot start the monitor on 127.0.0.1:{first.server.port}: .*--monitor PORT"):
            LiveMonitor("127.0.0.1", first.server.port)
    finally:
        first.close()


def test_a_busy_port_fails_a_session_before_it_loads_or_writes_anything(tmp_path, capsys, monkeypatch):
    from improv.cli.main import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo.mid").write_bytes(b"last night's demo")
    first = LiveMonitor("127.0.0.1", 0)
    try:
        busy = str(first.server.port)
        assert main(["demo", "--calls", "1", "--monitor", busy]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"cannot start the monitor on 127.0.0.1:{busy}" in err[0], err
        assert (tmp_path / "demo.mid").read_bytes() == b"last night's demo"  # was replaced by an empty session
        loaded = []
        import improv.session.serve as serve_session

        monkeypatch.setattr(serve_session, "check_names", lambda choice: None)  # no MIDI system needed here
        monkeypatch.setattr(serve_session, "load_voices", lambda *a, **k: loaded.append(1) or (_ for _ in ()).throw(AssertionError("loaded")))
        assert main(["serve", "--virtual", "--monitor", busy]) == 2
        assert f"cannot start the monitor on 127.0.0.1:{busy}" in capsys.readouterr().err and not loaded
    finally:
        first.close()


@pytest.mark.parametrize("command", ["demo", "serve"])
def test_a_monitor_port_beyond_65535_is_a_usage_error(command, capsys):
    from improv.cli.main import main

    with pytest.raises(SystemExit) as stopped:
        main([command, "--monitor", "70000"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith("argument --monitor: must be a port between 0 and 65535, got 70000")


# ---- the taps, in simulated time -----------------------------------------------------------------


def tapped_rig(feed):
    clock = FakeClock()
    performer = ScriptedInput(clock, CALL)
    out = MemoryOutput(clock)
    engine = Engine(LadderModel(), PLAIN)
    lines = []
    tap = TappedInput(performer, feed, engine, clock, "ladder", snapshot_s=0.0)
    loop = ServeLoop(engine, tap, TappedOutput(out, feed, clock), clock, on_status=tapped_status(lines.append, feed, clock, tap))
    feed.wake = loop.wake
    return loop, out, engine, lines


def test_the_taps_post_the_session_and_change_nothing_in_it():
    feed = Feed()
    loop, out, _, lines = tapped_rig(feed)
    loop.run(until=10.0)
    clock = FakeClock()
    bare = MemoryOutput(clock)
    ServeLoop(Engine(LadderModel(), PLAIN), ScriptedInput(clock, CALL), bare, clock).run(until=10.0)
    assert kinds(out.sent) == kinds(bare.sent)  # the same messages at the same times
    events = list(feed.events)
    notes = [e for e in events if e["type"] == "note"]
    assert [(e["pitch"], e["velocity"] > 0) for e in notes if e["who"] == "performer"] == [(m.note, m.type == "note_on") for _, m in CALL]
    improv_sent = [(m.note, m.type == "note_on" and m.velocity > 0) for _, m in out.sent if m.type in ("note_on", "note_off")]
    assert [(e["pitch"], e["velocity"] > 0) for e in notes if e["who"] == "improv"] == improv_sent
    assert [e["line"] for e in events if e["type"] == "status"] == lines and lines[-1].startswith("#1 call 4 notes")
    doing = [e["doing"] for e in events if e["type"] == "state"]
    assert doing.index("listening") < doing.index("preparing") < doing.index("answering")
    state = next(e for e in events if e["type"] == "state" and e["doing"] == "answering")
    assert (state["bpm"], state["tempo_source"], state["voice"], state["temperature"]) == (100.0, "config", "ladder", 1.0)


def turns(loop, until: float) -> None:
    """The loop's turns up to ``until``, without its close (``run`` always ends the session)."""
    while loop.clock.now() < until:
        loop.turn(until)


def test_a_control_from_the_page_reaches_the_engine_on_the_loops_thread():
    feed = Feed()
    loop, out, engine, _ = tapped_rig(feed)
    feed.send(control_message("temperature", 0.5, PLAIN, 1))
    feed.send(control_message("length", 2.0, PLAIN, 1))
    turns(loop, until=2.5)  # mid-answer
    assert engine.temperature == pytest.approx(0.5, rel=0.02) and engine.length_factor == pytest.approx(2.0, rel=0.02)
    assert engine.mode == "responding"
    feed.send(control_message("panic", None, PLAIN, 1))
    turns(loop, until=2.6)
    assert engine.mode == "listening"
    assert sum(m.type == "control_change" and m.control == 123 for _, m in out.sent) == 16  # All Notes Off, every channel


def test_a_page_that_connects_late_gets_the_recent_past_and_the_state():
    feed, now = Feed(), [100.0]
    hub = Hub(feed, lambda: now[0], seconds=20.0)
    for i in range(50):  # one note on every second, from t = 50 to 99
        feed.post({"type": "note", "who": "performer", "channel": 0, "pitch": 60, "velocity": 80, "t": 50.0 + i})
    feed.post({"type": "status", "line": "#1 call", "t": 60.0})
    feed.post({"type": "state", "doing": "listening", "t": 99.0})
    cursor, past = hub.start()
    events = json.loads(b"[" + past + b"]")
    notes = [e for e in events if e["type"] == "note"]
    assert min(e["t"] for e in notes) >= 100.0 - 20 - 5 and len(notes) == 25
    assert events[-1]["type"] == "state" and any(e["type"] == "status" for e in events)
    assert hub.since(cursor) == (cursor, [])
    feed.post({"type": "note", "who": "improv", "channel": 0, "pitch": 72, "velocity": 0, "t": 100.5})
    cursor2, new = hub.since(cursor)
    assert cursor2 == cursor + 1 and [json.loads(e)["pitch"] for e in new] == [72]
    for i in range(EVENTS_MAX + 100):  # a page that stopped reading: the loop's side stays bounded
        feed.post({"type": "note", "who": "performer", "channel": 0, "pitch": 1, "velocity": 1, "t": 200.0})
    assert len(feed.events) == EVENTS_MAX


# ---- a real-time session, its stream and its controls -----------------------------------------------


def stream(url: str, timeout: float = 20.0):
    """(event name, data) of a Server-Sent Events stream, as they come."""
    response = urllib.request.urlopen(url, timeout=timeout)
    name = None
    for raw in response:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            yield name, json.loads(line[6:])


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


def post(url: str, payload: dict) -> int:
    req = urllib.request.Request(url + "control", json.dumps(payload).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


@pytest.mark.slow
def test_a_page_sees_the_session_live_and_its_controls_reach_the_engine():
    with LiveSession(calls=2, gap_s=4.0, lead_s=0.5) as live:
        seen = {"performer": 0, "improv": 0, "lines": [], "doing": set()}
        events = stream(live.monitor.url + "events")
        name, hello = next(events)
        assert name == "hello" and hello["voices"] == ["ladder"] and hello["controls"]["panic"]
        deadline = time.monotonic() + 20
        for name, data in events:
            for e in data.get("events", []):
                if e["type"] == "note" and e["velocity"] > 0:
                    seen[e["who"]] += 1
                elif e["type"] == "status":
                    seen["lines"].append(e["line"])
                elif e["type"] == "state":
                    seen["doing"].add(e["doing"])
            if seen["improv"] and any(line.startswith("#1 call 4 notes") for line in seen["lines"]) or time.monotonic() > deadline:
                break
        assert seen["performer"] >= 4 and seen["improv"] >= 1 and {"listening", "answering"} <= seen["doing"]
        assert any(line.startswith("#1 call 4 notes") for line in seen["lines"])
        assert post(live.monitor.url, {"control": "temperature", "value": 0.5}) == 200
        wait_until(lambda: abs(live.engine.temperature - 0.5) < 0.02)
        before = len(live.sent())
        assert post(live.monitor.url, {"control": "panic"}) == 200
        wait_until(lambda: any(m.type == "control_change" and m.control == 123 for _, m in live.sent()[before:]))
    # the session over, the page is told so and its stream ends
    assert [name for name, _ in events][-1:] == ["bye"]
