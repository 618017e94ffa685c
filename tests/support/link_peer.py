"""A second Ableton Link peer in the test process (as a drum machine or a DAW would be), for the
tests and the benchmark of `serve --link`. Needs LinkPython-extern (`pip install -e ".[link]"`);
``link_or_skip`` says so, and says why when Link peers cannot meet on this machine."""

from __future__ import annotations

import time

INSTALL = 'needs Ableton Link for Python: pip install -e ".[link]"  (LinkPython-extern)'


def link_module():
    """The Link library, or None."""
    try:
        import link
    except ImportError:
        return None
    return link if hasattr(link, "Link") else None


class Peer:
    """One Link peer; times are ``time.perf_counter`` seconds (the serve loop's clock, system-wide
    on Linux: CLOCK_MONOTONIC), mapped to Link's own clock by reading both together."""

    def __init__(self, bpm: float, quantum: int = 4) -> None:
        lib = link_module()
        assert lib is not None, INSTALL
        self.quantum = quantum
        self.link = lib.Link(float(bpm))
        self.link.enabled = True

    def close(self) -> None:
        self.link.enabled = False

    def peers(self) -> int:
        return self.link.numPeers()

    def wait_for_peers(self, n: int = 1, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.link.numPeers() >= n:
                return True
            time.sleep(0.02)
        return False

    def _offset(self) -> float:
        """perf_counter minus Link's clock, in seconds (the tightest of a few paired reads)."""
        best = None
        for _ in range(20):
            t0 = time.perf_counter()
            m = self.link.clock().micros()
            t1 = time.perf_counter()
            if best is None or t1 - t0 < best[0]:
                best = (t1 - t0, (t0 + t1) / 2 - m / 1e6)
        return best[1]

    def tempo(self) -> float:
        return self.link.captureAppSessionState().tempo()

    def set_tempo(self, bpm: float) -> None:
        state = self.link.captureAppSessionState()
        state.setTempo(float(bpm), self.link.clock().micros())
        self.link.commitAppSessionState(state)

    def beat_at(self, t: float) -> float:
        """The session's beat (phase kept modulo the quantum) at perf_counter time ``t``."""
        offset = self._offset()
        micros = int(round((t - offset) * 1e6))
        return self.link.captureAppSessionState().beatAtTime(micros, float(self.quantum))


def peers_meet(timeout: float = 5.0) -> str | None:
    """None when two Link peers on this machine find each other; else why not (for pytest.skip)."""
    if link_module() is None:
        return INSTALL
    a, b = Peer(120), Peer(120)
    try:
        if not (a.wait_for_peers(1, timeout) and b.wait_for_peers(1, timeout)):
            return f"two Link peers on this machine did not find each other in {timeout:g} s (Link discovers peers by UDP multicast to 224.76.78.75:20808 on each network interface; this sandbox may allow none)"
        return None
    finally:
        a.close()
        b.close()
