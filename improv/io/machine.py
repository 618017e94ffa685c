"""What the machine allows: the CPU cores this process may use, and its thread rules.

Shared by the shell (`train`, `serve`, the corpus workers), so that each rule is made once: thread
counts follow the CPU *affinity* (a container or ``taskset`` gives fewer cores than
``os.cpu_count()`` reports), and a model stepped one event at a time runs on one BLAS thread.
"""

from __future__ import annotations

import functools
import os


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_threads(processes: int = 1) -> int:
    """torch threads per process when none are asked for: half the usable cores, shared among
    ``processes`` processes on this machine, at least one.

    Why not every core: OpenMP threads spin at each of the many small matrix products of a
    recurrent step, so a process with as many threads as cores collapses as soon as anything else
    runs (measured on 2 cores: 8.4k events/s with 2 threads alone, 116 with another training run
    beside it; 6.4k with 1 thread in the same conditions).
    """
    return max(1, usable_cores() // (2 * max(processes, 1)))


@functools.lru_cache(maxsize=1)
def one_blas_thread() -> bool:
    """Make the BLAS libraries this process has loaded (numpy's OpenBLAS, MKL) use one thread,
    through threadpoolctl, once per process; True if there was one to limit.

    Why: a model step is a few matrix-vector products of a few hundred rows. With two BLAS
    threads on a busy two-core machine one step took 12 ms (p50) instead of 0.13 ms: the threads
    wait for each other. It changes the whole process, so the shell calls it before it steps a
    model (serve, demo, generate, eval), not the pure step code.
    """
    import numpy  # noqa: F401  (loads numpy's BLAS, so that threadpoolctl finds it)
    from threadpoolctl import threadpool_info, threadpool_limits

    if not [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]:
        return False
    threadpool_limits(limits=1, user_api="blas")  # not used as a context: it stays for the process
    return True
