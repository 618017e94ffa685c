"""A JACK client that JACK never runs (``io.jack_synchro``): libjack hands a client opened in a
window after another program's client closed that client's dead wake-up, and it hears (or sends)
nothing while JACK's graph shows it connected: the deaf server of ``test_memory_jack``. improv's
clients are checked as they open and made again (``rtmidi_client.new_client``)."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import time

import pytest
from support.jack_server import running_jack

from improv.io.jack_synchro import mapped_synchros, own_synchro

MAPS = [
    "7f2d48c1b000-7f2d48c1c000 rw-s 00000000 00:1b 6754    /dev/shm/jack_sem.0_improv-1-2_performer1\n",
    "7f2d4c145000-7f2d4c146000 rw-s 00000000 00:1b 6699    /dev/shm/jack_sem.0_improv-1-2_improv-probe (deleted)\n",
    "7f2d4c147000-7f2d4c148000 rw-s 00000000 00:1b 6674    /dev/shm/jack_sem.0_improv-1-2_improv1-01\n",
    "7f2d4c149000-7f2d4c14a000 r-xp 00000000 08:01 1234    /usr/lib/libjack.so.0\n",
]


def test_a_client_has_its_own_wake_up_only_when_one_under_its_name_appeared():
    assert mapped_synchros(MAPS) == {"improv-1-2_performer1", "improv-1-2_improv1-01"}  # a closed client's left out
    before = {"improv-1-2_system", "improv-1-2_improv1"}
    assert own_synchro("improv1", before, before | {"improv-1-2_improv1-01"})  # JACK renamed the second improv1
    assert own_synchro("performer", before, before | {"improv-1-2_performer"})
    assert not own_synchro("improv1", before, before)  # no new wake-up: it took a dead one (the deaf server)
    assert not own_synchro("improv1", before, before | {"improv-1-2_improv0"})  # another's, not its own
    assert not own_synchro("improv", before, before | {"improv-1-2_improv-probe"})
    assert own_synchro("improv1", None, before) and own_synchro("improv1", before, set())  # nothing to tell by


RECEIVER = r"""
import sys, time, rtmidi
m = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "receiver"); m.open_virtual_port("in")
print("ready", flush=True)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    got = m.get_message()
    if got:
        print("got", *got[0], flush=True)
        break
    time.sleep(0.001)
"""


@pytest.fixture(scope="module")
def jack():
    yield from running_jack()


@pytest.mark.jack
def test_a_client_opened_as_another_programs_client_closes_still_runs(jack):
    """A client of this process whose notification thread lags (here a client-registration
    callback that sleeps, as a loaded machine makes it) has not yet emptied the slot of another
    program's client that opened and closed; a client opened then lands on that slot. Made by
    ``new_client`` it is made again and its message arrives (before: nothing arrived, ever)."""
    from improv.io.jack_watch import libjack
    from improv.io.rtmidi_client import close, new_client
    from improv.io.rtmidi_ports import resolve_api

    lib = libjack()  # the copy rtmidi loaded (its signatures set by jack_watch)
    if lib is None:
        pytest.skip("libjack cannot be loaded through ctypes")
    lib.jack_set_client_registration_callback.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lagging = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p)(lambda name, registered, arg: time.sleep(1.0))
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, "8"], env=jack.env, stdout=subprocess.PIPE, text=True)
    holder = lib.jack_client_open(b"holder", 1, ctypes.byref(ctypes.c_int(0)))
    assert holder
    sender = None
    try:
        assert receiver.stdout.readline().strip() == "ready"
        lib.jack_set_client_registration_callback(holder, ctypes.cast(lagging, ctypes.c_void_p), None)
        assert lib.jack_activate(holder) == 0
        # another program's client, opened and closed: the holder is told of it, and lags
        subprocess.run([sys.executable, "-c", 'import rtmidi; rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "passing").delete()'], env=jack.env, check=True, timeout=30)
        sender = new_client("MidiOut", resolve_api("jack"), "sender")
        sender.open_port(sender.get_ports().index("receiver:in"))
        time.sleep(0.5)  # the connection live in JACK's graph
        sender.send_message([0x90, 60, 100])
        assert receiver.stdout.readline().split() == ["got", "144", "60", "100"]
    finally:
        if sender is not None:
            close(sender)
        lib.jack_client_close(holder)
        receiver.kill()
        receiver.wait(5)
