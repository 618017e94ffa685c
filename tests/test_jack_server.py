"""The test bench's private jackd (``support.jack_server``): a server whose pytest was killed
mid-run (an orphan) is stopped by the next session that starts one, so that orphans never fill
JACK's table of servers ("Too many servers already active") and make every JACK test skip; a
live test's server and anyone else's jackd are left alone."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from support.jack_server import _running, orphaned_server, reap_orphans

OURS = ["/usr/bin/jackd", "--no-realtime", "-n", "improv-4242-123", "-d", "dummy", "-r", "48000", "-p", "256"]


def test_an_orphaned_test_server_is_recognised_and_nothing_else():
    assert orphaned_server(OURS, ppid=1) == "improv-4242-123"  # its pytest is gone: handed to init
    assert orphaned_server(OURS, ppid=777) == "improv-4242-123"  # ... or to a subreaper
    assert orphaned_server(OURS[:1] + OURS[2:], ppid=1) == "improv-4242-123"  # as root: no --no-realtime
    assert orphaned_server(OURS, ppid=4242) is None  # its pytest still runs it
    assert orphaned_server(["jackd", "-n", "improv-4242-123", "-d", "alsa"], ppid=1) is None  # a real device: not a test's
    assert orphaned_server(["jackd", "-n", "default", "-d", "dummy"], ppid=1) is None  # a user's server
    assert orphaned_server(["jackd", "-d", "dummy"], ppid=1) is None  # no name: the user's default server
    assert orphaned_server(["jackd", "-n", "improv-x-1", "-d", "dummy"], ppid=1) is None
    assert orphaned_server(["/usr/bin/python3", "-n", "improv-4242-123", "-d", "dummy"], ppid=1) is None
    assert orphaned_server(["jackd", "-n"], ppid=1) is None
    assert orphaned_server([], ppid=1) is None


@pytest.mark.jack
def test_an_orphaned_server_is_stopped_and_a_live_one_is_not():
    """A jackd named as a test's server whose starter is gone (the pid in its name is a process
    that exited; its parent here is this pytest) is stopped; a server of a live test is not."""
    from support.jack_server import JackServer

    jackd = shutil.which("jackd")
    if jackd is None:
        pytest.skip("no jackd here (apt-get install jackd2)")
    gone = subprocess.Popen(["true"])
    gone.wait()
    orphan = subprocess.Popen([jackd, "--no-realtime", "-n", f"improv-{gone.pid}-1", "-d", "dummy"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    live = JackServer()
    reason = live.start()  # reaps too: the orphan may already be gone
    try:
        if reason is not None:
            pytest.skip(f"JACK cannot run here: {reason}")
        time.sleep(0.5)
        reap_orphans()
        assert orphan.wait(timeout=10) is not None
        assert live.proc is not None and _running(live.proc.pid) and live.proc.poll() is None
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait(5)
        live.stop()
