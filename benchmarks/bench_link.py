"""`improv serve --link` against a Link session: how close improv's answers land to the session's beat.

A second Ableton Link peer runs in this process (a drum machine, say) and sets the session's tempo:
66, 92, 120 and 152 bpm in turn. A scripted performer plays along with it over a private jackd, the
way people do: a call of eighths and quarters (tests/test_link_jack.py's) on the session's beat,
but 20 ms behind it and jittered (sd 12 ms). `improv serve` (the shipped ``folk`` voice, answers of
8 notes) answers, received by a listener on JACK and stamped on arrival. Each tempo comes after a
6.5 s pause, so that without Link the call is heard anew. Run twice: without ``--link`` (before:
improv keeps the performer's time) and with it.

Figures (``before`` / ``after``): ``link_{before,after}_grid_median_ms`` / ``_p90_ms`` — |distance|
of each answer onset to the session's grid (sixteenths and triplets of its beat);
``link_{before,after}_first_median_ms`` — the answer's first note to the session's nearest beat;
``link_{before,after}_tempo_ok`` — answers whose status-line tempo is the session's within 1 bpm;
``link_{before,after}_send_p99_ms`` / ``_max_ms`` — the serve loop's send lateness (its own closing
line): the Link thread must not delay a send.
Without JACK only the shell's figures are given. The shell's, in this process: ``link_view_phase_us``
— the median |phase error| of the shell's view (on the loop's clock) against the peer's own, over
50 reads; ``link_follow_ms`` — the time from the peer's tempo change to the view showing it (median
of 5); ``link_publish_phase_ms`` — improv alone publishes a bar line, a peer joins: the median
distance of the published beats to the peer's.
It needs LinkPython-extern (`pip install -e ".[link]"`); without it, or where Link peers cannot
meet, it returns ``link_skipped`` = 1 and says why on stderr.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # tests/support: the Link peer, the private jackd, serve as a process

TEMPI = [66, 92, 120, 152]
CALL = [0, 0.5, 1, 1.5, 2, 3, 3.5, 4, 5, 6]
PITCHES = [60, 62, 64, 65, 67, 65, 64, 62, 64, 60]
GRID = (0, 0.25, 1 / 3, 0.5, 2 / 3, 0.75, 1)
BEHIND_S, JITTER_S = 0.020, 0.012


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--link-seed", type=int, default=0, help="the performer's jitter (default 0)")


def off_grid_ms(beat: float, beat_s: float, grid=GRID) -> float:
    f = beat - np.floor(beat)
    return float(min(abs(f - g) for g in grid) * beat_s * 1000)


def wait(test, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if test():
            return True
        time.sleep(0.01)
    return False


def shell_figures() -> dict:
    from support.link_peer import Peer

    from improv.io.link_session import LinkSession

    out: dict = {}
    peer = Peer(100.0)
    time.sleep(1.0)  # the peer's session is the older: improv joins it
    session = LinkSession(120.0, 4)
    try:
        wait(lambda: session.view().peers == 1 and abs(session.view().bpm - 100) < 0.01, 5)
        errors = []
        for _ in range(50):
            v, t = session.view(), time.perf_counter()
            d = ((t - v.downbeat) / (60 / v.bpm) - peer.beat_at(t)) % 4
            errors.append(min(d, 4 - d) * 60 / v.bpm * 1e6)
            time.sleep(0.013)
        out["link_view_phase_us"] = round(statistics.median(errors), 1)
        follow = []
        for bpm in (110.0, 95.0, 130.0, 87.0, 140.0):
            t0 = time.perf_counter()
            peer.set_tempo(bpm)
            wait(lambda: abs(session.view().bpm - bpm) < 0.01, 2)
            follow.append((time.perf_counter() - t0) * 1000)
        out["link_follow_ms"] = round(statistics.median(follow), 2)
    finally:
        session.close()
        peer.close()
    time.sleep(0.5)
    session = LinkSession(100.0, 4)
    peer = None
    try:
        bar = time.perf_counter() + 0.137
        session.lead(123.0, bar)
        time.sleep(1.0)
        peer = Peer(60.0)
        wait(lambda: peer.peers() == 1 and abs(peer.tempo() - 123) < 0.01, 5)
        beat_s = 60 / 123
        out["link_publish_phase_ms"] = round(statistics.median(off_grid_ms(peer.beat_at(bar + k * beat_s), beat_s, (0, 1)) for k in range(0, 40, 4)), 3)
    finally:
        session.close()
        if peer is not None:
            peer.close()
    return out


def perform(out, peer, bpm: float, rng) -> float:
    """The call on the session's beat (from its next bar), behind it and jittered; its last note-off."""
    import mido

    beat = 60 / bpm
    now = time.perf_counter() + 0.3
    b = peer.beat_at(now)
    start = now + ((4 - b % 4) % 4) * beat + BEHIND_S  # the next bar line of the session's, a little late
    events = []
    for k, p in zip(CALL, PITCHES):
        at = k * beat + rng.normal(0, JITTER_S)
        events.append((at, mido.Message("note_on", note=p, velocity=100 if k % 2 == 0 else 70)))
        events.append((at + 0.45 * beat, mido.Message("note_off", note=p)))
    from support.serve_process import send_on_time

    return send_on_time(out, events, start)


def served(jack, peer, link: bool, seed: int) -> dict:
    from support.serve_process import served as serve_on

    cmd = [
        sys.executable, "-m", "improv", "serve", "--api", "jack", "--voice", "folk", "--virtual",
        "--set", "serve.response_unit=events", "--set", "serve.response_length=8", "--set", "serve.silence_ms=300",
    ] + (["--link"] if link else [])  # fmt: skip
    rng = np.random.default_rng(seed)
    grid, firsts, tempo_ok, missed = [], [], 0, 0
    with serve_on(jack, cmd, cwd=REPO, start_timeout=90) as s:
        lines, performer, listener, proc = s.lines, s.performer, s.listener, s.proc
        for number, bpm in enumerate(TEMPI, start=1):
            peer.set_tempo(bpm)
            time.sleep(6.5)  # a long pause: without Link the call is heard anew
            listener.got.clear()
            end = perform(performer, peer, bpm, rng)
            ok = listener.wait(lambda got: len(listener.note_ons(after=end)) >= 1, timeout=30)
            while ok and listener.wait(lambda got: len(listener.note_ons(after=end)) > count, timeout=1.5) if (count := len(listener.note_ons(after=end))) else False:
                pass
            try:
                status = lines.wait_for(f"#{number} call", timeout=10)
            except AssertionError:  # no answer: counted, said
                print(f"# link: no answer to call {number} at {bpm} bpm ({len(listener.got)} messages received after it); serve said: {lines.rest()[-4:]}", file=sys.stderr)
                missed += 1
                continue
            heard = re.search(r"· (\d+) bpm", status)
            tempo_ok += heard is not None and abs(float(heard.group(1)) - bpm) <= 1
            times = [t for t, _ in listener.note_ons(after=end)]
            beat_s = 60 / bpm
            grid += [off_grid_ms(peer.beat_at(t), beat_s) for t in times]
            if times:
                firsts.append(off_grid_ms(peer.beat_at(times[0]), beat_s, (0, 1)))
        proc.send_signal(2)
        proc.wait(timeout=30)
        time.sleep(0.3)  # the last lines read
        summary = next((line for line in lines.rest() if "lateness" in line), "")
        late = re.search(r"p99 ([\d.]+) ms, max ([\d.]+) ms", summary)
    name = "after" if link else "before"
    return {
        f"link_{name}_grid_median_ms": round(float(np.median(grid)), 2),
        f"link_{name}_grid_p90_ms": round(float(np.percentile(grid, 90)), 2),
        f"link_{name}_first_median_ms": round(float(np.median(firsts)), 2),
        f"link_{name}_tempo_ok": round(tempo_ok / len(TEMPI), 3),
        f"link_{name}_onsets": len(grid),
        f"link_{name}_missed": missed,
        f"link_{name}_send_p99_ms": float(late.group(1)) if late else -1.0,  # the serve loop's own lateness
        f"link_{name}_send_max_ms": float(late.group(2)) if late else -1.0,
    }


def run(args: argparse.Namespace) -> dict:
    from support.link_peer import Peer, peers_meet

    why = peers_meet()
    if why is not None:
        print(f"# link: skipped: {why}", file=sys.stderr)
        return {"link_skipped": 1}
    figures = shell_figures()
    from support.jack_server import JackServer

    jack = JackServer()
    reason = jack.start()
    if reason is not None:
        print(f"# link: no JACK figures: {reason}", file=sys.stderr)
        return figures
    try:
        peer = Peer(TEMPI[0])
        time.sleep(1.0)  # the peer's session is the older one: improv joins it
        try:
            for link in (False, True):
                figures.update(served(jack, peer, link, getattr(args, "link_seed", 0)))
        finally:
            peer.close()
    finally:
        jack.stop()
    figures["jack_period_ms"] = jack.period / 48.0
    return figures
