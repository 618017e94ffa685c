"""What the bench_* modules share: timed parts run in a child process of the same script.

Why a child: numpy's BLAS (and OpenMP) read their thread count when first imported, so a figure
taken "on one thread" needs a fresh process started with the thread variables set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def run_child(script: str | Path, task: str, params: dict[str, Any], threads: int = 1) -> dict[str, float]:
    """Run ``python SCRIPT TASK PARAMS`` and return the JSON object it prints last.

    ``threads`` > 0 sets the BLAS/OpenMP thread variables (0 leaves them to the child). Lines the
    child writes to stderr starting with ``note:`` are passed on; a failure raises with its last line.
    """
    env = dict(os.environ)
    if threads:
        env.update({key: str(threads) for key in THREAD_VARIABLES})
    script = Path(script).resolve()
    out = subprocess.run([sys.executable, str(script), task, json.dumps(params)], env=env, capture_output=True, text=True, check=False)
    sys.stderr.write("".join(line + "\n" for line in out.stderr.splitlines() if line.startswith("note:")))
    if out.returncode != 0:
        raise RuntimeError(f"{script.stem} {task} failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def child_main(tasks: dict[str, Callable[..., dict[str, float]]], argv: list[str] | None = None) -> None:
    """The child's side: ``argv`` = [task, JSON params]; run the task, print its figures as JSON."""
    task, params = (sys.argv[1:] if argv is None else argv)[:2]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # improv itself, from a checkout
    print(json.dumps(tasks[task](**json.loads(params))))
