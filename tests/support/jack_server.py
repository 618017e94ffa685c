"""A private JACK server (dummy audio driver) for the real-port test and benchmark.

Each one gets its own server name, so it never meets a jackd someone else started; clients find
it through ``JACK_DEFAULT_SERVER`` (set in this process while it runs, and passed to children).
``start()`` returns None when the server runs, else the reason it cannot (for ``pytest.skip``).
``crash()`` kills it as a crash would; ``start()`` again brings it back under the same name.

Why ``stop()`` starts a crashed server once more before stopping it: a killed jackd leaves its
shared memory behind (about 100 MB in /dev/shm) and its slot in libjack's table of servers; a few
of those and no jackd on the machine starts ("Too many servers already active"). A server started
under the same name cleans them up, and a clean stop leaves nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

_UNSET = object()


class JackServer:
    def __init__(self, name: str | None = None, rate: int = 48000, period: int = 256) -> None:
        self.name = name or f"improv-{os.getpid()}-{int(time.time() * 1000) % 100000}"
        self.rate = rate
        self.period = period
        self.proc: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile()
        self._saved_env: object = _UNSET  # JACK_DEFAULT_SERVER before the first start
        self._crashed = False

    @property
    def env(self) -> dict[str, str]:
        """Environment for a child process that should use this server."""
        return {**os.environ, "JACK_DEFAULT_SERVER": self.name, "JACK_NO_AUDIO_RESERVATION": "1"}

    def start(self, timeout: float = 30.0) -> str | None:  # a loaded machine (CI runs two suites) can take that long
        jackd = shutil.which("jackd")
        if jackd is None:
            return "no jackd here (apt-get install jackd2)"
        try:
            import rtmidi
        except ImportError:
            return "python-rtmidi is not installed"
        if rtmidi.API_UNIX_JACK not in rtmidi.get_compiled_api():
            return "python-rtmidi was built without JACK"
        cmd = [jackd, "-n", self.name, "-d", "dummy", "-r", str(self.rate), "-p", str(self.period)]
        if os.geteuid() != 0:
            cmd.insert(1, "--no-realtime")  # realtime scheduling needs privileges
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._crashed = False
        if self._saved_env is _UNSET:
            self._saved_env = os.environ.get("JACK_DEFAULT_SERVER")
        os.environ["JACK_DEFAULT_SERVER"] = self.name
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                reason = f"jackd exited at start ({self.proc.returncode}): {self.log()[-300:]!r}"
                self.stop()
                return reason
            if self._reachable():
                return None
            time.sleep(0.1)
        self.stop()
        return f"jackd did not come up within {timeout:.0f} s"

    def _reachable(self) -> bool:
        from improv.errors import PortError
        from improv.io.rtmidi_ports import PortLister, resolve_api

        try:
            PortLister(resolve_api("jack")).close()
        except PortError:
            return False
        return True

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def crash(self) -> None:
        """SIGKILL: every client of the server is left with a dead server, as after a real crash."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self._crashed = True

    def stop(self) -> None:
        if self._crashed:
            self._crashed = False
            if self.start() is not None:  # started under its name, it cleans up after the killed one
                return
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self._saved_env is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        elif isinstance(self._saved_env, str):
            os.environ["JACK_DEFAULT_SERVER"] = self._saved_env
        self._saved_env = _UNSET


def running_jack():
    """A private jackd for a pytest fixture (``yield from running_jack()``): skipped, saying why,
    where JACK cannot run; stopped afterwards."""
    import pytest

    server = JackServer()
    reason = server.start()
    if reason is not None:
        pytest.skip(f"JACK cannot run here: {reason}")
    try:
        yield server
    finally:
        server.stop()
