"""Issue 21, item 1: closing the terminal (SIGHUP) or SIGQUIT ends `improv serve` exactly as SIGTERM
does: every note_on closed, All Notes Off on every channel, the recording written, exit 0.

`improv serve` runs as a process on a private jackd, with a performer and a listener as JACK
clients; the signal comes in the middle of an answer. No timing is asserted: generous timeouts.
"""

from __future__ import annotations

import signal
import time

import mido
import pytest
from support.jack_server import running_jack
from support.serve_process import NO_PROBE, assert_closed_at_the_end, play, serve_cmd, served, tiny_checkpoint_file

pytestmark = [pytest.mark.jack, pytest.mark.slow]


@pytest.fixture(scope="module")
def jack():
    yield from running_jack()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return tiny_checkpoint_file(tmp_path_factory.mktemp("ckpt"))


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGQUIT], ids=["SIGHUP", "SIGQUIT"])
def test_a_hangup_or_quit_mid_answer_ends_the_session_as_sigterm_does(jack, tiny_checkpoint, tmp_path, sig):
    record = tmp_path / "session.mid"
    with served(jack, serve_cmd(tiny_checkpoint, "--virtual", "--record", str(record), "--set", "serve.response_length=40", *NO_PROBE)) as s:
        proc, lines, performer, listener = s.proc, s.lines, s.performer, s.listener
        asked = time.perf_counter()
        play(performer, [60, 62, 64, 65, 67])
        assert listener.wait(lambda got: sum(m.type == "note_on" and m.velocity > 0 and t > asked for t, m in got) >= 2, timeout=20), lines.rest()
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == 0, lines.rest()
        assert_closed_at_the_end(listener, lines)  # every note closed, All Notes Off: as far as JACK delivered
        recorded = mido.MidiFile(record)
        counts = {t.name: sum(m.type == "note_on" and m.velocity > 0 for m in t) for t in recorded.tracks}
        assert counts["performer"] in (4, 5) and counts["improv"] >= 2  # (one key may be lost to an xrun)
        assert any(line.startswith("improv: recorded") for line in lines.rest())
