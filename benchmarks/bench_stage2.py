"""Stage robustness (stage2): where the accompaniment stops when a note-off never arrives.

Over JACK an xrun can drop a whole cycle's MIDI; a note-off lost so left the band keeping time for
a key no one holds (the JACK accompaniment test's failure in loaded CI runs). A held-out chorale
soprano is played into `improv serve --mode accompany` over a private jackd (as the JACK test
does), once as sent and once with its last note-off dropped, at ``hold_bars`` 2 (the default) and
1, and 64 (the rule out of reach: as before it). The band's last onset is read from improv's own
record (``--record``: what it heard and what it played, one clock), after the last key it heard
struck. The melody's last note is a beat long (0.75 s at 80 bpm): with its key-up heard, the band's
last beat is the last within a bar of that key-up, 3.0 s after the key struck.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # tests/support: the JACK session the JACK test runs too


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage2-runs", type=int, default=1, help="runs of each case (default 1; ~30 s each)")


def tail_after_last_key(recorded: dict) -> float:
    """The band's last onset after the last key improv heard struck, s (improv's record: one clock)."""
    return max(on for on, _, _ in recorded["improv"]) - max(on for on, _, _ in recorded["performer"])


def run(args: argparse.Namespace) -> dict:
    from support.accompany_jack import accompany_over_jack
    from support.jack_server import JackServer
    from support.serve_process import tiny_checkpoint_file

    jack = JackServer()
    reason = jack.start()
    if reason is not None:
        print(f"# stage2: no JACK ({reason}); nothing measured", file=sys.stderr)
        return {}
    # hold_bars 64: the rule out of reach, as before it (stuck_note_s, 10 s, then a bar: 13 s)
    cases = {"sent": (False, 2), "lost_hold2": (True, 2), "lost_hold1": (True, 1), "lost_no_hold": (True, 64)}
    out: dict = {}
    try:
        with tempfile.TemporaryDirectory() as folder:
            checkpoint = tiny_checkpoint_file(Path(folder))
            for name, (lose, hold) in cases.items():
                tails = []
                for k in range(getattr(args, "stage2_runs", 1)):
                    record = Path(folder) / f"{name}{k}.mid"
                    run_ = accompany_over_jack(jack, checkpoint, beats=12.0, bpm=80.0, record=record, extra=("--set", f"serve.hold_bars={hold}"), lose_last_off=lose, listen_bars=min(hold, 4) + 0.5)
                    tails.append(tail_after_last_key(run_.recorded))
                out[f"stage2_{name}_band_after_last_key_s_max"] = round(max(tails), 3)
            out["stage2_bar_s"] = 3.0  # 4 beats at 80 bpm
    finally:
        jack.stop()
    return out
