"""Start-up of `improv serve` to "ready", and its memory then.

* ``serve_ready_s``: from starting ``python -m improv serve --virtual --api jack`` to its
  "improv: listening on" line (the voices loaded and warmed up, the ports open), median of runs.
* ``serve_ready_own_mb``: its own resident memory at that moment (RssAnon + RssFile of
  /proc/PID/status: heap, code, the models), and ``serve_ready_rss_mb`` all of it (VmRSS), which
  adds the MIDI system's shared memory every JACK client maps (~105 MB of jackd's segment here,
  the same for any client: it is jackd's, counted in every process that maps it).
* ``serve_imports_torch``: 1 if torch got imported (it must not: the live path is numpy alone).

Through a private JACK server (dummy driver), like the serve benchmark. ``--startup-tree PATH``
measures another checkout instead (e.g. an older commit, for a before/after), with this Python.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # tests/support: the private jackd the JACK tests use too

WATCH = "import sys, runpy; sys.argv = ['improv'] + sys.argv[1:]; runpy.run_module('improv', run_name='__main__')"


def add_arguments(parser) -> None:
    parser.add_argument("--startup-runs", type=int, default=5, help="start-ups to time (default 5)")
    parser.add_argument("--startup-tree", metavar="PATH", help="measure this checkout of improv instead of the installed one")
    parser.add_argument("--startup-args", default="", help="extra serve arguments, e.g. '--checkpoint checkpoints/default.pt'")


def _status(pid: int) -> dict[str, float]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024
    return out


def _imports_torch(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/maps") as f:
            return any("libtorch" in line for line in f)
    except OSError:
        return False


def one_start(env: dict[str, str], extra: list[str], cwd: str | None) -> dict[str, float]:
    cmd = [sys.executable, "-c", WATCH, "serve", "--virtual", "--api", "jack", *extra]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if line.startswith("improv: listening on"):
                ready = time.perf_counter() - started
                mem = _status(proc.pid)
                own = mem["RssAnon"] + mem["RssFile"]
                return {"ready_s": ready, "rss_mb": mem["VmRSS"], "own_mb": own, "torch": float(_imports_torch(proc.pid))}
            if line.startswith("improv: error"):
                raise RuntimeError(line.strip())
        raise RuntimeError(f"serve ended without getting ready (exit {proc.wait()})")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def run(args) -> dict:
    from support.jack_server import JackServer

    runs = getattr(args, "startup_runs", 5)
    tree = getattr(args, "startup_tree", None)
    extra = (getattr(args, "startup_args", "") or "").split()
    jack = JackServer()
    reason = jack.start()
    if reason is not None:
        print(f"# startup: no JACK ({reason}); not measured", file=sys.stderr)
        return {}
    try:
        env = dict(jack.env)
        if tree:
            env["PYTHONPATH"] = str(Path(tree).resolve())
        one_start(env, extra, tree)  # a first start warms the disk cache: not counted
        samples = [one_start(env, extra, tree) for _ in range(runs)]
    finally:
        jack.stop()
    return {
        "serve_ready_s": round(statistics.median(s["ready_s"] for s in samples), 3),
        "serve_ready_own_mb": round(statistics.median(s["own_mb"] for s in samples), 1),
        "serve_ready_rss_mb": round(statistics.median(s["rss_mb"] for s in samples), 1),
        "serve_imports_torch": int(max(s["torch"] for s in samples)),
    }
