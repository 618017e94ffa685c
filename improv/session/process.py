"""What a live session asks of the process: a real-time priority for the loop's thread where the
system allows it (``realtime_scheduling``), below JACK's client threads (``loop_priority``), and
``serve``: the loop run with the two-stage Ctrl-C, one BLAS thread, short GIL switches and a frozen
heap, everything restored at the end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from improv.io.machine import one_blas_thread
from improv.io.signals import StopRequests
from improv.session.loop import LoopStats, ServeLoop

if TYPE_CHECKING:
    from improv.io.input_poller import InputPoller


def realtime_scheduling(priority: int) -> tuple[str, Callable[[], None]]:
    """Ask for SCHED_FIFO at ``priority`` for this thread; (what we got, how to undo it).

    Why: on a loaded machine the kernel may wake a normal thread milliseconds late, and no spin
    makes up for that. A real-time priority (below JACK's own threads) makes it wake on time.
    Needs Linux and root or an rtprio limit; otherwise the loop runs at normal priority.
    """
    import os

    if priority <= 0:
        return "normal priority", lambda: None
    try:
        old_policy = os.sched_getscheduler(0)
        old_param = os.sched_getparam(0)
        os.sched_setscheduler(0, os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0), os.sched_param(priority))
    except (AttributeError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or "not supported here"
        return f"normal priority (no real-time scheduling: {reason})", lambda: None

    def undo() -> None:
        try:
            os.sched_setscheduler(0, old_policy, old_param)
        except OSError:
            pass

    return f"real-time priority {priority}", undo


def loop_priority(wanted: int, jack_clients: int | None) -> tuple[int, str]:
    """The loop's real-time priority: ``wanted``, but strictly below JACK's client threads
    (``jack_clients``: their SCHED_FIFO priority, 0 when JACK runs without real-time scheduling,
    None when the session is not on JACK); (priority, why, or "" when it is ``wanted``).

    Why: a SCHED_FIFO thread is never preempted by one of the same priority. At JACK's own client
    priority (jackd -P 10 gives its clients 5, improv's old default), the loop's model work and its
    spin before each send kept JACK's client threads waiting on that core; with a second busy core
    (another session, another JACK graph) JACK missed its cycle (an xrun), and the MIDI events of
    that cycle, improv's notes just sent among them, were lost. Below them, JACK preempts the loop.
    With JACK not real-time at all, a real-time loop would hold up every JACK thread: normal
    priority then.
    """
    if wanted <= 0 or jack_clients is None:
        return max(wanted, 0), ""
    if jack_clients <= 0:
        return 0, "JACK runs without real-time priority, so improv does too"
    if wanted < jack_clients:
        return wanted, ""
    if jack_clients <= 1:
        return 0, f"JACK's client threads run at real-time priority {jack_clients}, the lowest: improv runs below them"
    return jack_clients - 1, f"below JACK's client threads at {jack_clients}"


def serve(
    loop: ServeLoop,
    *,
    until: float | None = None,
    handle_signals: bool = True,
    realtime_priority: int = 0,
    jack_clients: int | None = None,
    poller: InputPoller | None = None,
) -> LoopStats:
    """Run ``loop`` as a session: the first Ctrl-C (or SIGTERM, SIGHUP, SIGQUIT) ends it cleanly, a second one at
    once, but never before the final note-offs and All Notes Off have left (``io.signals``); and
    the process is tuned for steady timing (one BLAS thread, a real-time priority when allowed and
    below JACK's client threads: ``loop_priority``, short GIL switches, a frozen heap). ``poller``:
    the session's MIDI input poller, which runs at the loop's priority while the session does."""
    import contextlib
    import gc
    import sys

    blas = "1 BLAS thread" if one_blas_thread() else "BLAS threads unchanged"
    wanted, why = loop_priority(realtime_priority, jack_clients)
    priority, undo_priority = realtime_scheduling(wanted)
    if poller is not None:  # the input's poller beside the loop
        poller.priority = wanted if priority.startswith("real-time") else 0
    switch = sys.getswitchinterval()
    # Why: the MIDI input's poller thread needs the GIL to queue a message; a short switch interval
    # bounds how long it waits while this thread computes (the default is 5 ms).
    sys.setswitchinterval(0.0005)
    # Why: everything loaded so far (models, music21) is long-lived; frozen, the cyclic
    # collector never walks it again, so its pauses stay short during the session.
    gc.collect()
    gc.freeze()
    stop = StopRequests(on_first=loop.request_stop)
    try:
        with stop if handle_signals else contextlib.nullcontext():
            loop.shield = stop.shielded
            # Said once the stop signals are handled: a supervisor (or a test) may send SIGTERM
            # from this line on and get a clean exit (0), not the default death by the signal.
            loop.on_status(f"improv: timing: {priority}{f' ({why})' if why else ''}, {blas}")
            return loop.run(until)
    finally:
        gc.unfreeze()
        sys.setswitchinterval(switch)
        undo_priority()
        if poller is not None:
            poller.priority = 0
