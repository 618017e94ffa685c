"""What the machine allows: the CPU cores this process may use, and whether a file can be written.

Small checks shared by the shell (`train`, `serve`, the corpus workers), so that each rule is made
once: thread counts follow the CPU *affinity* (a container or ``taskset`` gives fewer cores than
``os.cpu_count()`` reports), and an output that cannot be written fails in one line *before* the
slow work, not after it.
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
    """Make numpy's OpenBLAS use one thread (once per process); True if it could.

    Why: a model step is a few matrix-vector products of a few hundred rows. With two BLAS
    threads on a busy two-core machine one step took 12 ms (p50) instead of 0.13 ms: the threads
    wait for each other. (Linux: found among the loaded libraries; elsewhere a no-op.) It changes
    the whole process, so the shell calls it before it steps a model (serve, demo, generate, eval),
    not the pure step code.
    """
    import ctypes

    import numpy  # noqa: F401  (loads numpy's OpenBLAS, so that it is among the loaded libraries)

    try:
        with open("/proc/self/maps") as maps:
            libs = sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and ".so" in line})
    except OSError:
        return False
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "scipy_openblas_set_num_threads"):
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(1)
                return True
    return False
