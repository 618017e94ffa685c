"""The monitor's web server: the standard library's ``ThreadingHTTPServer`` in a thread of its own.

Why no framework: the page needs three routes (the page, a stream of events, a control), and
Server-Sent Events are plain HTTP: one long response of ``data:`` lines, which browsers reconnect
by themselves. A dependency would add more than it saves.

Access: on a loopback address (the default, 127.0.0.1) only this machine can connect; requests
must name the host they connect to (``Host``: a web page elsewhere cannot reach the monitor
through a DNS name of its own), and a control must be a JSON POST from the monitor's own page (a
page elsewhere cannot send one without the browser asking first, which is never allowed). Any
other address must be asked for and gets a token: every request without it is refused (403).

Each stream is one web thread that wakes every ``PUSH_S``, reads the hub and writes what is new; it
never touches the loop (the hub's deques are the only thing shared).
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from improv.errors import ImprovError
from improv.monitor.feed import Hub

PUSH_S = 0.05  # a stream writes what is new at most 20 times a second
PING_S = 10.0  # and a comment line when nothing happened for this long (a closed page is noticed)
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
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler, bind_and_activate=True)
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

    def allowed_host(self, header: str | None) -> bool:
        """Without a token, only requests that name a loopback host (no DNS rebinding)."""
        if self.token is not None:
            return True  # the token guards it, whatever name this machine is reached by
        if not header:
            return False
        name = header[: header.find("]") + 1] if header.startswith("[") else header.split(":")[0]
        return name.lower() in LOOPBACK_NAMES


class _Handler(BaseHTTPRequestHandler):
    monitor: MonitorServer
    protocol_version = "HTTP/1.1"
    server_version = "improv-monitor"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # the terminal is the performer's: no request log there

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self._admitted()
        if path is None:
            return
        if path == "/":
            self._send(200, page(), "text/html; charset=utf-8")
        elif path == "/events":
            self._stream()
        elif path == "/state":
            hub = self.monitor.hub
            hub.pull()
            self._send(200, json.dumps({**hub.info, "state": hub.state}).encode(), "application/json")
        else:
            self._send(404, b"not found\n", "text/plain")

    def do_POST(self) -> None:  # noqa: N802
        path = self._admitted()
        if path is None:
            return
        if path != "/control":
            self._send(404, b"not found\n", "text/plain")
            return
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{self.headers.get('Host')}":
            self._send(403, b"controls come from the monitor's own page\n", "text/plain")
            return
        if self.headers.get_content_type() != "application/json":
            self._send(415, b"a control is a JSON object\n", "text/plain")
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(min(length, 4096)) or b"{}")
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
        if token is not None:
            given = parse_qs(parts.query).get("token", [""])[0] or self.headers.get("X-Improv-Token", "")
            if not secrets.compare_digest(given.encode(), token.encode()):
                self._send(403, b"this monitor needs its token: open the address improv printed\n", "text/plain")
                return None
        return parts.path

    def _send(self, code: int, body: bytes, kind: str) -> None:
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
        cursor, last_write = 0, 0.0
        try:
            self._event("hello", {**hub.info, "now": hub.now()})
            while not hub.closed.is_set():
                cursor, events = hub.since(cursor)
                now = time.monotonic()
                if events:
                    self._event("events", {"now": hub.now(), "events": events})
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
        self.wfile.write(f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode())
        self.wfile.flush()


def page() -> bytes:
    return resources.files("improv.monitor").joinpath("page.html").read_bytes()
