"""A real headless browser for the monitor's test and benchmark: Chromium driven through the
DevTools protocol (CDP) over a WebSocket (``websocket-client``).

``Browser.start()`` returns None when it runs, else the reason it cannot (for ``pytest.skip``):
no chromium here, no websocket-client, or a browser that does not come up.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from typing import Any

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> str | None:
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    def __init__(self, width: int = 1280, height: int = 900) -> None:
        self.size = (width, height)
        self.proc: subprocess.Popen | None = None
        self.ws: Any = None
        self.log: list[str] = []
        self._profile = tempfile.mkdtemp(prefix="improv-chromium-")
        self._id = 0

    def start(self, timeout: float = 30.0) -> str | None:
        exe = find_chromium()
        if exe is None:
            return "no chromium here (apt-get install chromium)"
        try:
            import websocket
        except ImportError:
            return "websocket-client is not installed (pip install -e '.[dev]')"
        cmd = [
            exe, "--headless=new", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
            f"--user-data-dir={self._profile}", "--no-first-run", "--no-default-browser-check", "--disable-gpu",
            "--disable-extensions", "--disable-background-networking", "--disable-dev-shm-usage", "--mute-audio",
            f"--window-size={self.size[0]},{self.size[1]}", "about:blank",
        ]  # fmt: skip
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root (a CI container)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        found = threading.Event()
        endpoint: list[str] = []

        def drain() -> None:  # read stderr to its end: a full pipe would stall the browser
            assert self.proc is not None and self.proc.stderr is not None
            for line in self.proc.stderr:
                self.log.append(line.rstrip())
                if "DevTools listening on ws://" in line and not endpoint:
                    endpoint.append(line.split("DevTools listening on ", 1)[1].strip())
                    found.set()

        threading.Thread(target=drain, daemon=True).start()
        if not found.wait(timeout):
            self.close()
            return f"chromium did not start within {timeout:.0f} s: {' | '.join(self.log[-3:])}"
        port = endpoint[0].split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                    pages = [t for t in json.load(r) if t.get("type") == "page"]
                if pages:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.close()
                return "chromium shows no page to drive"
            time.sleep(0.2)
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=timeout, suppress_origin=True)
        return None

    def send(self, method: str, **params: Any) -> dict:
        """One CDP command; its result (events in between are skipped)."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('text')} {result['exceptionDetails'].get('exception', {}).get('description', '')}")
        return result.get("result", {}).get("value")

    def navigate(self, url: str, timeout: float = 20.0) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'", timeout)

    def wait_for(self, expression: str, timeout: float = 20.0, every: float = 0.2) -> Any:
        """Poll ``expression`` until it is truthy; its value. A generous timeout: CI machines are slow."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value, problem = self.evaluate(expression), ""
            except RuntimeError as exc:  # the page is not there yet (still loading, or an error page)
                value, problem = None, f"; {exc}"
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:.0f} s for: {expression} (last value {value!r}{problem})")
            time.sleep(every)

    def screenshot(self, path: str) -> None:
        import base64

        data = self.send("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:  # noqa: BLE001 - closing: nothing more to do with it
                pass
            self.ws = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self._profile, ignore_errors=True)


def running_browser():
    """A headless Chromium for a test, or ``pytest.skip`` with the reason it cannot start."""
    import pytest

    b = Browser()
    reason = b.start()
    if reason is not None:
        b.close()
        pytest.skip(reason)
    try:
        yield b
    finally:
        b.close()


def wait_until(condition, timeout: float = 15.0) -> None:
    """Poll ``condition`` until it holds; a TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)
