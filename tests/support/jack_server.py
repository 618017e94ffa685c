"""A private JACK server (dummy audio driver) for the real-port test and benchmark.

Each one gets its own server name, so it never meets a jackd someone else started; clients find
it through ``JACK_DEFAULT_SERVER`` (set in this process while it runs, and passed to children).
``start()`` returns None when the server runs, else the reason it cannot (for ``pytest.skip``).
``crash()`` kills it as a crash would; ``start()`` again brings it back under the same name.

Why ``stop()`` starts a crashed server once more before stopping it: a killed jackd leaves its
shared memory behind (about 100 MB in /dev/shm) and its slot in libjack's table of servers; a few
of those and no jackd on the machine starts ("Too many servers already active"). A server started
under the same name cleans them up, and a clean stop leaves nothing.

Orphans: a pytest killed mid-run leaves its jackd running with no owner, holding a slot of that
table; two or three of those and every JACK test on the machine skips. Each server's name carries
the pid of the process that started it (``improv-PID-N``), so ``start()`` first stops every test
server whose starter is no longer its parent (``orphans``): never a jackd of anyone else's.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

_UNSET = object()
_NAME = re.compile(r"improv-(\d+)-\d+")  # JackServer's own names: the starter's pid, a number


class JackServer:
    def __init__(self, name: str | None = None, rate: int = 48000, period: int = 256) -> None:
        self.name = name or f"improv-{os.getpid()}-{int(time.time() * 1000) % 100000}"  # _NAME
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
        reap_orphans()
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


def orphaned_server(cmdline: list[str], ppid: int) -> str | None:
    """The name of the test server this jackd command line (argv) is, where the process that
    started it is no longer its parent (killed: the jackd was handed to init or a subreaper), else
    None: a live test's server, or a jackd this project's tests did not start (another name,
    another driver)."""
    if not cmdline or os.path.basename(cmdline[0]) != "jackd":
        return None
    args = cmdline[1:]
    try:
        name, driver = args[args.index("-n") + 1], args[args.index("-d") + 1]
    except (ValueError, IndexError):
        return None
    found = _NAME.fullmatch(name)
    if found is None or driver != "dummy" or int(found.group(1)) == ppid:
        return None
    return name


def orphans(proc: Path = Path("/proc")) -> list[tuple[int, str]]:
    """(pid, server name) of every orphaned test server on this machine (Linux's /proc; none
    found elsewhere)."""
    found = []
    for entry in proc.glob("[0-9]*"):
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])  # after the (name), state, ppid
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to read
        name = orphaned_server(cmdline, ppid)
        if name is not None:
            found.append((int(entry.name), name))
    return found


def reap_orphans(wait_s: float = 5.0) -> list[str]:
    """Stop every orphaned test server (SIGTERM: jackd frees its slot and shared memory on the
    way out; SIGKILL after ``wait_s``); the names stopped."""
    reaped = []
    for pid, name in orphans():
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            continue
        deadline = time.monotonic() + wait_s
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # not our child: no wait(); its new parent reaps it
        if _running(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)  # its slot stays taken: rare, and better than a server hung
        reaped.append(name)
    return reaped


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


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
