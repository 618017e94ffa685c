"""The Link shell (io/link_session.py) with a real second peer in this process: the view follows
the peer's tempo and beat on the loop's clock, and improv's lead reaches the peer. Skipped, saying
why, without LinkPython-extern (`pip install -e ".[link]"`) or where Link peers cannot meet."""

from __future__ import annotations

import time

import pytest
from support.link_peer import Peer, link_module, peers_meet

from improv.io.link_session import LinkSession, LinkUnavailable, load_link


@pytest.fixture(scope="module")
def meet():
    why = peers_meet()
    if why is not None:
        pytest.skip(why)


# When two sessions meet, Link keeps the older one, when it is older by more than half a second
# (sessions founded closer together: either, by their ids).
SESSION_EPS_S = 1.0


def wait(test, timeout=3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if test():
            return True
        time.sleep(0.02)
    return False


def phase_error_ms(session: LinkSession, peer: Peer) -> float:
    """Where the view puts the beat now against where the peer does, in ms (modulo a bar)."""
    v = session.view()
    t = time.perf_counter()
    beat_s = 60 / v.bpm
    mine = (t - v.downbeat) / beat_s
    theirs = peer.beat_at(t)
    d = (mine - theirs) % v.quantum
    return min(d, v.quantum - d) * beat_s * 1000


def test_without_the_library_serve_link_says_how_to_install(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_link(name, *a, **kw):
        if name == "link":
            raise ImportError(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_link)
    with pytest.raises(LinkUnavailable, match=r'pip install -e "\.\[link\]"'):
        load_link()


def test_the_view_follows_a_peers_tempo_and_beat(meet):
    peer = Peer(87.0)
    time.sleep(SESSION_EPS_S)  # the peer's session is older: improv joins it
    session = LinkSession(100.0, 4)
    try:
        assert wait(lambda: session.view().peers == 1), "improv never saw the peer"
        assert wait(lambda: abs(session.view().bpm - 87.0) < 0.01), session.view()
        assert phase_error_ms(session, peer) < 1.0
        peer.set_tempo(133.0)  # the peer changes the tempo: seen within a refresh or two
        assert wait(lambda: abs(session.view().bpm - 133.0) < 0.01, timeout=1.0), session.view()
        time.sleep(0.05)
        assert phase_error_ms(session, peer) < 1.0
    finally:
        session.close()
        peer.close()


def test_improvs_lead_reaches_the_peer(meet):
    session = LinkSession(100.0, 4)
    peer = None
    try:
        assert session.view().peers == 0
        bar = time.perf_counter() + 0.137  # the performer's downbeat
        session.lead(120.0, bar)
        assert wait(lambda: abs(session.view().bpm - 120.0) < 0.01, timeout=1.0)
        time.sleep(SESSION_EPS_S)
        peer = Peer(60.0)  # joins improv's session: takes its tempo and its bar line
        assert peer.wait_for_peers(1) and wait(lambda: abs(peer.tempo() - 120.0) < 0.01), (peer.tempo(), session.view())
        beats = peer.beat_at(bar + 8 * 0.5)  # two bars later, on the peer's timeline
        assert min(beats % 4, 4 - beats % 4) * 500 < 1.0  # a bar line of the peer's, within 1 ms
        session.lead(150.0, bar)  # with the peer there, a new tempo of the performer's: the peer takes it
        assert wait(lambda: abs(peer.tempo() - 150.0) < 0.01, timeout=2.0), peer.tempo()
    finally:
        session.close()
        if peer is not None:
            peer.close()


def test_closing_leaves_the_session(meet):
    peer = Peer(90.0)
    session = LinkSession(90.0, 4)
    try:
        assert wait(lambda: peer.peers() == 1)
        session.close()
        assert wait(lambda: peer.peers() == 0, timeout=3.0)
    finally:
        peer.close()


def test_the_library_is_only_imported_in_the_shell():
    """The live path reads views; only io/link_session.py imports the library."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "improv"
    users = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            if any(n in ("link", "aalink") or (n or "").startswith("link.") for n in names):
                users.append(path.relative_to(root).as_posix())
    assert users == ["io/link_session.py"]
    assert link_module() is None or hasattr(link_module(), "Link")


class FakeLib:
    """A stand-in for LinkPython-extern (runs without it): a timeline of ``bpm`` with beat 0 at
    Link time 0, Link's clock 5 s ahead of perf_counter; every call after construction records its
    thread, and ``gate`` (cleared) blocks the session-state calls, as a lock held by Link's
    network thread would."""

    def __init__(self) -> None:
        import threading

        self.calls: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        lib = self

        class State:
            def __init__(self, link):
                self.link = link

            def tempo(self):
                return self.link.bpm

            def beatAtTime(self, micros, q):
                return (micros - self.link.origin) / 1e6 * self.link.bpm / 60

            def phaseAtTime(self, micros, q):
                return self.beatAtTime(micros, q) % q

            def timeAtBeat(self, beat, q):
                return self.link.origin + beat * 60 / self.link.bpm * 1e6

            def isPlaying(self):
                return False

            def setTempo(self, bpm, micros):
                self.bpm = bpm

            def requestBeatAtTime(self, beat, micros, q):
                self.origin = micros - beat * 60 / self.bpm * 1e6

        class Clock:
            def micros(self):
                return int((time.perf_counter() + 5.0) * 1e6)

        class Link:
            def __init__(self, bpm):
                self.bpm, self.origin, self.enabled, self.startStopSyncEnabled = bpm, 0.0, False, False

            def _call(self, name):
                import threading

                lib.calls.append(threading.current_thread().name)
                lib.gate.wait(0.5)  # bounded: a loop that called in fails the test, not hangs it

            def numPeers(self):
                self._call("numPeers")
                return 0

            def clock(self):
                return Clock()

            def captureAppSessionState(self):
                self._call("capture")
                return State(self)

            def commitAppSessionState(self, state):
                self._call("commit")
                self.bpm, self.origin = state.bpm, state.origin

        self.Link = Link


def test_the_loop_never_calls_the_library_and_the_view_is_on_the_loops_clock(monkeypatch):
    import sys

    lib = FakeLib()
    monkeypatch.setitem(sys.modules, "link", lib)
    session = LinkSession(120.0, 4, period_s=0.005)
    try:
        assert wait(lambda: lib.calls and session.view() is not None)
        v = session.view()
        # Beat 0 at Link time 0 = perf_counter -5 s: bar lines every 2 s of the loop's clock from -5.
        assert v.bpm == 120.0 and v.peers == 0 and _off_the_bar_line((v.downbeat + 5.0) / 2.0) < 1e-3
        lib.gate.clear()  # Link's lock is held: the thread waits in the library ...
        assert wait(lambda: lib.calls[-1] == "improv-link" and len(lib.calls) >= 2)
        lib.calls.clear()
        for _ in range(10):  # ... and the loop reads views and leads as ever: not one call of its own
            session.view()
            session.lead(90.0, time.perf_counter() + 0.25)
        assert lib.calls in ([], ["improv-link"])
        lib.gate.set()  # the lock is free: the lead is committed on the thread
        assert wait(lambda: session.view().bpm == 90.0)
        import threading

        assert set(lib.calls) == {"improv-link"} and threading.current_thread().name not in lib.calls
    finally:
        lib.gate.set()
        session.close()


def test_serve_link_without_the_library_is_one_line(tmp_path):
    """A fresh install without the [link] extra: `improv serve --link` stops in one line naming
    the install command (the library hidden here, installed or not)."""
    import os
    import subprocess
    import sys

    hidden = tmp_path / "link"
    hidden.mkdir()
    (hidden / "__init__.py").write_text('raise ImportError("not installed")\n')
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "improv", "serve", "--link", "--virtual", "--api", "jack"], env=env, capture_output=True, text=True, timeout=120)
    if "Link" not in done.stderr and "JACK" in done.stderr:  # the port check comes first: it needs rtmidi's JACK
        pytest.skip(f"no JACK MIDI in rtmidi here: {done.stderr.strip()}")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.strip().splitlines() == ['improv: error: serve --link needs Ableton Link for Python: pip install -e ".[link]"  (or: pip install LinkPython-extern)']


def _off_the_bar_line(bars: float) -> float:
    """Distance to the nearest whole bar, both ways: 0.9999999 bars is on the line, not a bar off."""
    return abs(bars - round(bars))
