"""Issue 21, item 4: the monitor page cannot stall the loop. Every route refuses another page's
requests (GETs too), connections and streams are limited, each event is serialised once, and a
control's ``Content-Length`` cannot block a handler. A flood of ``/events`` from another process
is held at the door while a real-time session plays on (its lateness is measured in
``benchmarks/bench_stage.py``, never asserted here: the machine is shared)."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time

import pytest
from support.flood import FLOOD
from support.live_session import LiveSession

from improv.monitor import feed as feed_module
from improv.monitor.feed import Feed, Hub
from improv.monitor.server import MAX_CONNECTIONS, MAX_STREAMS, MonitorServer


def request(port, method, path, body=None, headers=None, timeout=5.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read() if response.status != 200 or path != "/events" else b""
    finally:
        conn.close()


@pytest.fixture
def server():
    hub = Hub(Feed(), time.perf_counter, 20.0)
    server = MonitorServer(hub, lambda name, value: None, "127.0.0.1", 0)
    server.start()
    yield server
    server.close()


def test_every_route_refuses_another_pages_requests(server):
    port = server.port
    for path in ("/", "/state", "/events"):
        assert request(port, "GET", path, headers={"Origin": "http://attacker.example"})[0] == 403, path
        assert request(port, "GET", path, headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"})[0] == 403, path
    assert request(port, "GET", "/state", headers={"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"})[0] == 200
    assert request(port, "GET", "/state", headers={"Sec-Fetch-Site": "none"})[0] == 200  # typed into the address bar
    # A link to the page from anywhere opens it (the page holds no data; its requests are checked)
    assert request(port, "GET", "/", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"})[0] == 200


@pytest.mark.parametrize("length, code", [("-1", 400), ("1000000000000", 413), ("many", 400)])
def test_a_bad_content_length_cannot_block_a_handler(server, length, code):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        sock.sendall(f"POST /control HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n".encode())
        reply = sock.recv(200)  # before: the handler read until the client closed (or forever)
    finally:
        sock.close()
    assert reply.startswith(f"HTTP/1.1 {code}".encode()), reply


def test_streams_and_connections_are_limited(server):
    streams = []
    try:
        codes = []
        for _ in range(MAX_STREAMS + 2):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            conn.request("GET", "/events")
            response = conn.getresponse()  # kept: a response let go closes its stream
            codes.append(response.status)
            streams.append((conn, response))
        assert codes == [200] * MAX_STREAMS + [503, 503]
        idle = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(MAX_CONNECTIONS + 4)]
        try:
            closed = 0
            for sock in idle:
                sock.settimeout(0.5)
                try:
                    closed += sock.recv(10) == b""  # closed at the door, unanswered
                except TimeoutError:
                    pass  # served (waiting for a request)
            assert closed >= 4 + MAX_STREAMS
        finally:
            for sock in idle:
                sock.close()
    finally:
        for conn, response in streams:
            response.close()
            conn.close()


def test_each_event_is_serialised_once_however_many_pages_connect(monkeypatch):
    made = []
    monkeypatch.setattr(feed_module, "to_json", lambda event: made.append(event) or json.dumps(event))
    feed, now = Feed(), [100.0]
    hub = Hub(feed, lambda: now[0], 20.0)
    for i in range(500):
        feed.post({"type": "note", "who": "performer", "channel": 0, "pitch": 60, "velocity": 80, "t": 90.0 + i / 100})
    pages = [hub.start() for _ in range(5)]
    assert all(past == pages[0][1] for _, past in pages) and len(json.loads(b"[" + pages[0][1] + b"]")) == 500
    feed.post({"type": "note", "who": "improv", "channel": 0, "pitch": 72, "velocity": 90, "t": 100.0})
    assert [json.loads(t)["pitch"] for t in hub.since(pages[0][0])[1]] == [72]
    assert len(json.loads(b"[" + hub.start()[1] + b"]")) == 501  # a page that connects now gets it too
    assert len(made) == 501


def test_a_flood_of_new_streams_is_held_at_the_door(server):
    from improv.monitor.server import NEW_STREAMS_PER_S

    codes = []
    for _ in range(NEW_STREAMS_PER_S + 3):  # each closed at once: never more than one open
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("GET", "/events")
        response = conn.getresponse()
        codes.append(response.status)
        response.close()
        conn.close()
    assert codes.count(200) <= NEW_STREAMS_PER_S and codes[-1] == 503



@pytest.mark.slow
def test_a_flood_of_event_streams_from_another_process_is_held_at_the_door():
    from improv.monitor.server import NEW_STREAMS_PER_S

    with LiveSession(calls=3, gap_s=4.0, lead_s=1.0) as live:
        for i in range(6000):  # a long session's history, as in the report: 6,000 events
            live.monitor.feed.post({"type": "note", "who": "performer", "channel": 0, "pitch": 60, "velocity": 80, "t": live.clock.now()})
        flood = subprocess.Popen([sys.executable, "-c", FLOOD, live.monitor.url + "events"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert flood.stdout.readline().strip() == "ready"
            began = time.monotonic()
            deadline = time.monotonic() + 30
            while live.loop.stats.exchange_count < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            served, refused = map(int, flood.communicate("", timeout=30)[0].split())
            lasted = time.monotonic() - began
    exchanges = list(live.loop.stats.exchanges)
    assert len(exchanges) == 3 and all(ex.first_sent_at is not None for ex in exchanges), live.lines  # each call answered
    # The flood came, and at most a few streams a second were served (each one the history):
    # before, every request was served, thousands in these seconds, each serialising 6,000 events.
    assert refused > 0 and served <= NEW_STREAMS_PER_S * (lasted + 2), (served, refused, lasted)
