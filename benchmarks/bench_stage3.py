"""Stage robustness (stage3): how long answer mode waits on a key whose note-off never arrives.

Over JACK an xrun can drop a whole cycle's MIDI; a note-off lost so held the call open (the key
still down to improv) until ``stuck_note_s`` (10 s). Now a key held with nothing else played for
``hold_bars`` bars of the performer's pulse counts as up, as the band's rule has it. Two calls of
a set are played into `improv serve` over a private jackd at 100 bpm (a 2.4 s bar), tempo
estimated: the first sets the set's tempo, the second's last note-off is sent or dropped, at
``hold_bars`` 2 (the default), 1, and 64 (the rule out of reach: as before it). Read from improv's
own record (``--record``: what it heard and what it played, one clock): the second answer's first
note after the second call's last key struck. One case more (``first_lost_hold2``) drops the
*first* call's last note-off: before the set has a tempo, the bars are those of the call's own
pulse (before, ``stuck_note_s`` decided alone); measured on the first answer.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # tests/support: the JACK session the JACK tests run too

BPM = 100.0
CALL = [60, 62, 64, 65, 67, 65, 64, 62]  # eighths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage3-runs", type=int, default=1, help="runs of each case (default 1; ~25 s each)")
    parser.add_argument("--stage3-cases", default="", help="comma-separated cases to run (default all: sent, lost_hold2, lost_hold1, lost_no_hold, first_lost_hold2)")


def perform(performer, start_beat_s: float, lose_last_off: bool) -> float:
    """The call, on time; returns when its last key was struck (perf_counter)."""
    import mido
    from support.serve_process import send_on_time

    eighth = 30 / BPM
    events = []
    for k, p in enumerate(CALL):
        events.append((k * eighth, mido.Message("note_on", note=p, velocity=80)))
        if not (lose_last_off and k == len(CALL) - 1):
            events.append((k * eighth + 0.8 * eighth, mido.Message("note_off", note=p)))
    start = time.perf_counter() + start_beat_s
    send_on_time(performer, events, start)
    return start + (len(CALL) - 1) * eighth


def answer_after_last_key(jack, checkpoint: Path, record: Path, hold: int, lose: bool, first: bool = False) -> tuple[float, float, float]:
    """The second answer's first onset after the second call's last key struck, s (improv's
    record); the same from outside (the last key sent, the first answer note a listener got);
    the set's tempo improv heard (its status line). ``first``: the first call's note-off is the
    one dropped (``lose``), and the first answer is measured (no second call)."""
    import re

    from support.accompany_jack import recorded_seconds
    from support.serve_process import served, stop

    cmd = [
        sys.executable, "-m", "improv", "serve", "--api", "jack", "--checkpoint", str(checkpoint), "--virtual",
        "--bpm", str(BPM), "--record", str(record), "--set", f"serve.hold_bars={hold}",
        "--set", "serve.response_unit=events", "--set", "serve.response_length=4",
    ]  # fmt: skip
    with served(jack, cmd) as s:
        s.lines.wait_for("improv: timing:", timeout=60)
        struck = perform(s.performer, 0.05, lose_last_off=lose and first)
        status = s.lines.wait_for("#1 call", timeout=60)
        if not first:
            struck = perform(s.performer, 0.5, lose_last_off=lose)
            status = s.lines.wait_for("#2 call", timeout=60)
        s.listener.wait(lambda got: False, timeout=0.3)
        outside = min(t for t, _ in s.listener.note_ons(after=struck)) - struck
        stop(s.proc, s.lines)
    recorded = recorded_seconds(record)
    call = sorted(on for on, _, _ in recorded["performer"])[slice(None, len(CALL)) if first else slice(len(CALL), None)]
    last_key = max(call)
    heard = float(re.search(r"· (\d+) bpm", status).group(1))
    return min(on for on, _, _ in recorded["improv"] if on > last_key) - last_key, outside, heard


def run(args: argparse.Namespace) -> dict:
    from support.jack_server import JackServer
    from support.serve_process import tiny_checkpoint_file

    jack = JackServer()
    reason = jack.start()
    if reason is not None:
        print(f"# stage3: no JACK ({reason}); nothing measured", file=sys.stderr)
        return {}
    cases = {"sent": (False, 2, False), "lost_hold2": (True, 2, False), "lost_hold1": (True, 1, False), "lost_no_hold": (True, 64, False), "first_lost_hold2": (True, 2, True)}
    out: dict = {}
    try:
        with tempfile.TemporaryDirectory() as folder:
            checkpoint = tiny_checkpoint_file(Path(folder))
            for name, (lose, hold, first) in cases.items():
                if getattr(args, "stage3_cases", None) and name not in args.stage3_cases.split(","):
                    continue
                runs = [answer_after_last_key(jack, checkpoint, Path(folder) / f"{name}{k}.mid", hold, lose, first) for k in range(getattr(args, "stage3_runs", 1))]
                out[f"stage3_{name}_answer_after_last_key_s_max"] = round(max(w for w, _, _ in runs), 3)
                out[f"stage3_{name}_listener_after_last_key_sent_s_max"] = round(max(w for _, w, _ in runs), 3)  # the outside check
                out[f"stage3_{name}_bar_heard_s"] = round(max(4 * 60 / bpm for _, _, bpm in runs), 3)  # bar_beats (4) at the tempo heard
    finally:
        jack.stop()
    return out
