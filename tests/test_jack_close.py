"""Closing a port never races libjack's notification thread (``io.rtmidi_client``): every
``close_port`` of improv's rtmidi clients waits first for the clients' notifications to be handled
(``settle``). The crash itself depends on a loaded machine's timing and is counted in
``benchmarks/bench_segf.py``, not here; these check that no close path skips the wait."""

from __future__ import annotations

import pytest

from improv.io import rtmidi_client, rtmidi_ports as ports, sysex_release
from improv.io import watched_ports as watched
from support.jack_server import running_jack


class Recorder:
    """One log of settles and closes, in the order they happened."""

    def __init__(self):
        self.events: list[str] = []

    def settle(self):
        self.events.append("settle")


class LoggedRt:
    """An rtmidi client that logs its closes into the recorder."""

    def __init__(self, kind, log: Recorder, ports_there=("keys", "synth")):
        self.kind, self.log, self.ports = kind, log, list(ports_there)

    def get_ports(self):
        return self.ports

    def open_port(self, index, name):
        pass

    def open_virtual_port(self, name):
        pass

    def is_port_open(self):
        return True

    def close_port(self):
        self.log.events.append(f"close:{self.kind}")

    def delete(self):
        self.log.events.append(f"delete:{self.kind}")

    def ignore_types(self, **kw):
        pass

    def get_message(self):
        return None

    def send_message(self, data):
        pass


def settled_first(events: list[str]) -> bool:
    """Each close of a port comes right after a settle."""
    return all(k > 0 and events[k - 1] == "settle" for k, e in enumerate(events) if e.startswith("close:"))


def test_each_port_close_and_reopen_waits_for_the_settle_first(monkeypatch):
    log = Recorder()
    monkeypatch.setattr(ports, "_client", lambda kind, api, name: LoggedRt(kind, log))
    inp = ports.RtInput(0, "improv", port="keys", settle=log.settle)
    out = ports.RtOutput(0, "improv", port="synth", settle=log.settle)
    inp.reopen("keys")
    out.close()
    inp.close()
    assert log.events == ["settle", "close:MidiIn", "settle", "close:MidiOut", "delete:MidiOut", "settle", "close:MidiIn", "delete:MidiIn"]


def test_a_session_closes_through_its_listers_settle_output_first(monkeypatch):
    log = Recorder()

    class Lister:
        def inputs(self):
            return ["keys"]

        def outputs(self):
            return ["synth"]

        def settle(self):
            log.settle()

        def close(self):
            log.events.append("lister-closed")

    monkeypatch.setattr(watched, "resolve_api", lambda name: 0)
    monkeypatch.setattr(watched, "port_lister", lambda api, name: Lister())
    monkeypatch.setattr(ports, "_client", lambda kind, api, name: LoggedRt(kind, log))
    midi = watched.MidiPorts(watched.PortChoice(in_name="keys", out_name="synth"))
    midi.close()
    assert [e for e in log.events if e.startswith("close:")] == ["close:MidiOut", "close:MidiIn"]
    assert settled_first(log.events)
    assert log.events[-1] == "lister-closed"  # the lister settles the last close, so it goes last


def test_the_sysex_release_settles_before_each_close(monkeypatch):
    log = Recorder()
    monkeypatch.setattr(sysex_release, "new_client", lambda kind, api, name: LoggedRt("release", log, ["improv:in"]))
    release = sysex_release.SysexRelease(0, "improv", every_s=60.0, settle=log.settle)
    assert release.connect("improv:in")
    release.close()
    assert log.events == ["settle", "close:release", "settle", "close:release", "delete:release"]


def test_a_port_on_jack_settles_by_itself_where_no_session_gives_it_a_settle(monkeypatch):
    rtmidi = pytest.importorskip("rtmidi")
    log = Recorder()
    monkeypatch.setattr(ports, "_client", lambda kind, api, name: LoggedRt(kind, log))
    monkeypatch.setattr(sysex_release, "new_client", lambda kind, api, name: LoggedRt("release", log, []))
    assert ports.RtOutput(rtmidi.API_UNIX_JACK, "performer", port="synth").settle is ports.settle_jack
    assert ports.RtOutput(rtmidi.API_LINUX_ALSA, "performer", port="synth").settle is rtmidi_client.no_settle


@pytest.fixture(scope="module")
def jack():
    yield from running_jack()


def test_settle_lets_two_jack_cycles_pass_then_returns(jack):
    from improv.io.jack_ports import JackLister

    lister = JackLister("settle-test")
    try:
        lib, client = lister._lib, lister._client
        before = lib.jack_last_frame_time(client)
        lister.settle(cycles=2, wait_s=30.0)  # generous: a loaded machine's JACK still cycles
        passed = (lib.jack_last_frame_time(client) - before) % 2**32
        assert passed >= 2 * lib.jack_get_buffer_size(client)
    finally:
        lister.close()


def test_real_jack_ports_open_and_close_with_the_settle(jack):
    from improv.io.watched_ports import MidiPorts, PortChoice

    for _ in range(2):
        first = MidiPorts(PortChoice(api="jack", virtual=True, client_name="twin"))
        second = MidiPorts(PortChoice(api="jack", virtual=True, client_name="twin"))
        assert first.describe() != second.describe()
        first.close()
        second.close()


def test_a_ctrl_c_during_the_settle_still_closes_and_frees_the_port():
    log = Recorder()

    def interrupted():
        log.settle()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rtmidi_client.close(LoggedRt("MidiIn", log), interrupted)
    assert log.events == ["settle", "close:MidiIn", "delete:MidiIn"]


def test_libjacks_error_function_is_c_never_a_python_callback():
    """libjack reports errors from its own threads; a Python callback there waits for the GIL,
    which a python-rtmidi call blocked in libjack holds: a deadlock (a serve benchmark run hung in
    ``delete`` -> ``jack_client_close`` so). The function set is C's ``strlen``: no GIL needed."""
    import ctypes

    from improv.io.jack_watch import libjack, quiet_libjack

    lib = libjack()
    if lib is None:
        pytest.skip("libjack cannot be loaded here")
    quiet_libjack()
    set_to = ctypes.c_void_p.in_dll(lib, "jack_error_callback").value
    assert set_to == ctypes.cast(ctypes.CDLL(None).strlen, ctypes.c_void_p).value
    said = ctypes.CFUNCTYPE(None, ctypes.c_char_p)(set_to)
    said(b"improv test: said to no one")  # and calling it is harmless
