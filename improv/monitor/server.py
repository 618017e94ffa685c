"""The monitor's web server: the standard library's ``ThreadingHTTPServer`` in a thread of its own.

Why no framework: the page needs three routes (the page, a stream of events, a control), and
Server-Sent Events are plain HTTP: one long response of ``data:`` lines, which browsers reconnect
by themselves. A dependency would add more than it saves.

Access: on a loopback address (the default, 127.0.0.1) only this machine can connect; requests
must name the host they connect to (``Host``: a web page elsewhere cannot reach the monitor
through a DNS name of its own), and a control must be a JSON POST from the monitor's own page (a
page elsewhere cannot send one without the browser asking first, which is never allowed). Any
other address must be asked for and gets a token: every request without it is refused (403).
Every route, GETs too, refuses a request a browser says came from another page (``Origin`` not
this monitor's, ``Sec-Fetch-Site`` cross-site): any web page could otherwise loop
``fetch("http://127.0.0.1:8765/events", {mode: "no-cors"})``.

The session comes first: at most ``MAX_CONNECTIONS`` connections are served at once (more are
closed unanswered, with no thread made) and ``MAX_STREAMS`` event streams (more get 503); every
socket has a ``TIMEOUT_S`` (a client that sends or reads nothing cannot hold a thread); a control's
``Content-Length`` outside 0-4096 is refused before anything is read.

Each stream is one web thread that wakes every ``PUSH_S``, reads the hub and writes what is new,
as JSON texts made once per event (``feed.Hub``); it never touches the loop (the hub's deques are
the only thing shared).
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import socket
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from improv.errors import ImprovError
from improv.monitor.feed import Hub, to_json

PUSH_S = 0.05  # a stream writes what is new at most 20 times a second
MAX_CONNECTIONS = 16  # served at once; more are closed unanswered
MAX_STREAMS = 4  # event streams at once (a page holds one); more get 503
NEW_STREAMS_PER_S = 4  # streams opened in any one second, at most (a page reconnects every few seconds)
MAX_BODY = 4096  # a control's body, at most
TIMEOUT_S = 10.0  # a socket that sends or takes nothing this long is closed
REFUSE_PAUSE_S = 0.05  # the door waits this long after closing on a connection: a flood slows itself
TARPIT_S = 0.25  # a refused request (403, 503) is answered this late, holding its connection's place
PING_S = 2.0  # and a comment line when nothing happened for this long (a closed page is noticed, its stream freed)
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")


class MonitorError(ImprovError):
    """The monitor cannot start as asked (a busy port, an address not given explicitly)."""


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def access_token(host: str) -> str | None:
    """A fresh token when ``host`` is reachable from other machines; None on a loopback address."""
    return None if is_loopback(host) else secrets.token_urlsafe(18)


class MonitorServer:
    """Serves ``hub`` on ``host``:``port`` (0 = any free port); ``control(name, value)`` applies a
    control from the page (raising ``ImprovError`` for a bad one)."""

    def __init__(self, hub: Hub, control: Callable[[str, Any], None], host: str = "127.0.0.1", port: int = 8765, token: str | None = None) -> None:
        self.hub = hub
        self.control = control
        self.token = token
        handler = type("Handler", (_Handler,), {"monitor": self})
        self.streams = threading.BoundedSemaphore(MAX_STREAMS)
        self._opened: deque[float] = deque()  # when the streams of the last second opened
        self._door = threading.Lock()  # web threads only
        try:
            self.httpd = _Server((host, port), handler, bind_and_activate=True)
        except OSError as exc:
            raise MonitorError(f"cannot start the monitor on {host}:{port}: {exc.strerror or exc} (choose another: --monitor PORT)") from None
        self.httpd.daemon_threads = True  # a page left open never keeps improv from exiting
        self.host = host
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.25}, name="improv-monitor", daemon=True)

    @property
    def url(self) -> str:
        shown = self.host
        if self.host in ("0.0.0.0", "::", ""):
            shown = socket.gethostname()  # the address others reach this machine by
        elif ":" in shown:
            shown = f"[{shown}]"
        query = f"?token={self.token}" if self.token else ""
        return f"http://{shown}:{self.port}/{query}"

    def start(self) -> str:
        self._thread.start()
        return self.url

    def close(self) -> None:
        self.hub.close()  # every stream ends at its next wake
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=2)

    def open_stream(self) -> bool:
        """A stream may open (then ``streams`` is held: release it at the end): fewer than
        ``MAX_STREAMS`` open and ``NEW_STREAMS_PER_S`` opened in the last second."""
        with self._door:
            now = time.monotonic()
            while self._opened and now - self._opened[0] > 1.0:
                self._opened.popleft()
            if len(self._opened) >= NEW_STREAMS_PER_S or not self.streams.acquire(blocking=False):
                return False
            self._opened.append(now)
            return True

    def allowed_host(self, header: str | None) -> bool:
        """Without a token, only requests that name a loopback host (no DNS rebinding)."""
        if self.token is not None:
            return True  # the token guards it, whatever name this machine is reached by
        if not header:
            return False
        name = header[: header.find("]") + 1] if header.startswith("[") else header.split(":")[0]
        return name.lower() in LOOPBACK_NAMES


class _Server(ThreadingHTTPServer):
    """A threading server that serves at most ``MAX_CONNECTIONS`` at once: a flood of connections
    is closed at the door, without a thread each."""

    request_queue_size = 64  # a flood waits in the kernel's queue (no Python work) while the door pauses

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            # Why wait: each connection taken costs Python work under the GIL the loop needs, and a
            # web thread preempted while holding it makes the loop wait; waiting here (the GIL let
            # go) leaves the rest of a flood in the kernel's queue, where it costs nothing.
            time.sleep(REFUSE_PAUSE_S)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # a client that went away mid-answer: nothing for the performer's terminal
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    monitor: MonitorServer
    protocol_version = "HTTP/1.1"
    server_version = "improv-monitor"
    timeout = TIMEOUT_S  # the socket's: no client holds a thread by sending or reading nothing

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # the terminal is the performer's: no request log there

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self._admitted()
        if path is None:
            return
        if path == "/":
            self._send(200, page(), "text/html; charset=utf-8")
        elif path == "/events":
            if not self.monitor.open_stream():
                self._send(503, b"too many pages are watching this session\n", "text/plain")
                return
            try:
                self._stream()
            finally:
                self.monitor.streams.release()
        elif path == "/state":
            hub = self.monitor.hub
            hub.pull()
            self._send(200, to_json({**hub.info, "state": hub.state}).encode(), "application/json")
        else:
            self._send(404, b"not found\n", "text/plain")

    def do_POST(self) -> None:  # noqa: N802
        path = self._admitted()
        if path is None:
            return
        if path != "/control":
            self._send(404, b"not found\n", "text/plain")
            return
        if self.headers.get_content_type() != "application/json":
            self._send(415, b"a control is a JSON object\n", "text/plain")
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:  # -1 would read until the client closes; a huge one, forever
            self._send(413 if length > MAX_BODY else 400, f"a control's Content-Length is 0 to {MAX_BODY}\n".encode(), "text/plain")
            self.close_connection = True
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict) or not isinstance(body.get("control"), str):
                raise ValueError("expected {\"control\": NAME, \"value\": NUMBER}")
            self.monitor.control(body["control"], body.get("value"))
        except (ValueError, ImprovError) as exc:
            self._send(400, json.dumps({"error": str(exc)}).encode(), "application/json")
            return
        self._send(200, b"{}", "application/json")

    def _admitted(self) -> str | None:
        """The request's path if it may be served, else None (403 sent)."""
        parts = urlsplit(self.path)
        token = self.monitor.token
        if not self.monitor.allowed_host(self.headers.get("Host")):
            self._send(403, b"unknown host name\n", "text/plain")
            return None
        origin = self.headers.get("Origin")
        site = self.headers.get("Sec-Fetch-Site")
        if parts.path == "/" and self.headers.get("Sec-Fetch-Mode") == "navigate":
            site = None  # a link to the page itself, from anywhere: the page alone holds no data
        if (origin is not None and origin != f"http://{self.headers.get('Host')}") or site not in (None, "same-origin", "none"):
            self._send(403, b"requests come from the monitor's own page\n", "text/plain")
            return None
        if token is not None:
            given = parse_qs(parts.query).get("token", [""])[0] or self.headers.get("X-Improv-Token", "")
            if not secrets.compare_digest(given.encode(), token.encode()):
                self._send(403, b"this monitor needs its token: open the address improv printed\n", "text/plain")
                return None
        return parts.path

    def _send(self, code: int, body: bytes, kind: str) -> None:
        if code in (403, 503):
            time.sleep(TARPIT_S)  # a flood of refused requests holds the connection places, not the GIL
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _stream(self) -> None:
        """Server-Sent Events: a ``hello`` (the session's facts), then batches of events."""
        hub = self.monitor.hub
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        last_write = 0.0
        try:
            self._event("hello", {**hub.info, "now": hub.now()})
            cursor, past = hub.start()
            self._write(f'event: events\ndata: {{"now":{to_json(hub.now())},"events":[')
            self.wfile.write(past)  # bytes made once for every page (``Hub.start``)
            self._write("]}\n\n")
            hub.closed.wait(PUSH_S)
            while not hub.closed.is_set():
                cursor, events = hub.since(cursor)
                now = time.monotonic()
                if events:
                    self._write(f'event: events\ndata: {{"now":{to_json(hub.now())},"events":[{",".join(events)}]}}\n\n')
                    last_write = now
                elif now - last_write >= PING_S:
                    self.wfile.write(b": ping\n\n")
                    self.wfile.flush()
                    last_write = now
                hub.closed.wait(PUSH_S)
            self._event("bye", {})
        except (BrokenPipeError, ConnectionResetError, OSError):
            return  # the page was closed

    def _event(self, name: str, data: dict[str, Any]) -> None:
        self._write(f"event: {name}\ndata: {to_json(data)}\n\n")

    def _write(self, text: str) -> None:
        self.wfile.write(text.encode())
        self.wfile.flush()


def page() -> bytes:
    return resources.files("improv.monitor").joinpath("page.html").read_bytes()
