"""Real MIDI ports through python-rtmidi: the MIDI systems there are, listing and naming ports,
and one input or output opened by name (or a virtual one of improv's own).

Real ports use python-rtmidi directly (mido's rtmidi backend wraps the same library) so that
improv controls what matters for real time: no input callback (on JACK it would take the GIL
on JACK's process thread); a poller thread drains rtmidi's queue, stamps the raw bytes with their
arrival time (``time.perf_counter``, the serve loop's ``RealClock``), queues them and wakes the
serve loop (``input_poller``); the loop (one thread) parses and
handles them, with those stamps (``iter_stamped``). Client names are improv's own (``improv``), on every API. Parsing is tolerant:
running status, real-time bytes inside messages, sysex and junk never break it.

A port is named by a substring of its name; a name matching no port or several is a one-line
``PortError`` listing the ports there are.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterator, Sequence, TypeVar

import mido

from improv.errors import MIDI_SYSTEM_HINT, NoMidiSystem, PortError
from improv.io.arrivals import ArrivalQueue
from improv.io.input_poller import InputPoller
from improv.io.jack_ports import settle_jack
from improv.io.rtmidi_client import APIS, abandon, api_name, close, close_port, no_settle, rtmidi_module
from improv.io.rtmidi_client import new_client as _client
from improv.io.sysex_release import SysexRelease, is_release_port

T = TypeVar("T")


def available_apis() -> list[str]:
    """improv's names of the rtmidi APIs compiled into this python-rtmidi."""
    rt = rtmidi_module()
    compiled = set(rt.get_compiled_api())
    return [name for name, const in APIS.items() if getattr(rt, const, None) in compiled]


def resolve_api(name: str = "") -> int:
    """The rtmidi API constant for ``name``; "" = the first compiled API that can start here."""
    rt = rtmidi_module()
    if name:
        if name not in APIS:
            raise PortError(f"unknown MIDI API {name!r} (choose one of {', '.join(APIS)})")
        if name not in available_apis():
            raise PortError(f"MIDI API {name!r} is not available in this python-rtmidi (available: {', '.join(available_apis()) or 'none'})")
        return getattr(rt, APIS[name])
    failures = []
    for candidate in available_apis():
        api = getattr(rt, APIS[candidate])
        try:
            probe = _client("MidiIn", api, "improv-probe")
        except PortError as exc:
            failures.append(f"{candidate}: {str(exc).split(': ', 1)[-1]}")
            continue
        probe.delete()
        return api
    raise NoMidiSystem(f"no MIDI system is running here ({'; '.join(failures) or 'rtmidi has no API'}): {MIDI_SYSTEM_HINT}")


def reached(make: Callable[[], T]) -> T:
    """The first client of a MIDI system a command was told to use (``--api``, ``serve.api``):
    where that system is not running, the one-line error says how to get one, as when none is
    (the same error later in a session, a JACK restart, stays short: the supervisor retries)."""
    try:
        return make()
    except NoMidiSystem:
        raise
    except PortError as exc:
        raise NoMidiSystem(f"{exc}: {MIDI_SYSTEM_HINT}") from None


class PortLister:
    """Lists port names through one persistent pair of rtmidi objects (cheap to ask again)."""

    def __init__(self, api: int, client_name: str = "improv-probe") -> None:
        self._in = _client("MidiIn", api, client_name)
        self._out = _client("MidiOut", api, client_name)

    def inputs(self) -> list[str]:
        """The sources there are, less improv's own sysex releases (no one's keyboard)."""
        return [name for name in self._in.get_ports() if not is_release_port(name)]

    def outputs(self) -> list[str]:
        return self._out.get_ports()

    def close(self, server_gone: bool = False) -> None:
        for rt in (self._in, self._out):
            abandon(rt) if server_gone else rt.delete()


def list_ports(api: str = "") -> tuple[str, list[str], list[str]]:
    """(API name, input port names, output port names)."""
    rt_api = resolve_api(api)
    lister = reached(lambda: PortLister(rt_api))
    try:
        return api_name(rt_api), lister.inputs(), lister.outputs()
    finally:
        lister.close()


def match_port(names: Sequence[str], wanted: str, kind: str) -> str:
    """The one port whose name is ``wanted``, or else contains it (case-insensitive)."""
    if wanted in names:
        return wanted
    hits = [n for n in names if wanted.lower() in n.lower()]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        there = ", ".join(repr(n) for n in names) or "none"
        raise PortError(f"no MIDI {kind} port matches {wanted!r} ({kind} ports: {there})")
    there = ", ".join(f"{n!r} (matches)" if n in hits else repr(n) for n in names)
    raise PortError(f"{wanted!r} matches {len(hits)} MIDI {kind} ports; name one exactly ({kind} ports: {there})")


class _RtPort:
    """What an rtmidi input and output share: the client, opening a port (named, or a virtual one
    of improv's own), reopening it when it is back, making a new client when the MIDI system
    itself restarted, closing. A port that cannot be opened frees its client (an rtmidi client
    left behind is a JACK client, or an ALSA one, that stays)."""

    _kind = ""  # "input" / "output", for messages
    _own_name = ""  # the name of improv's end of the connection: "in" / "out"

    def __init__(self, api: int, client_name: str, port: str | None, virtual: str | None, settle: Callable[[], None] | None = None) -> None:
        self.api, self.client_name = api, client_name
        # Waited for before each close of its port (rtmidi_client's close race): the session's
        # lister where there is one, else on JACK a client of its own, elsewhere nothing.
        self.settle = settle or (settle_jack if api_name(api) == "jack" else no_settle)
        self.name = virtual or port or ""
        self.virtual = virtual is not None
        self._virtual = virtual
        self._rt = self._new_client()
        try:
            self.open_port(port, virtual)
        except BaseException:
            self.close()
            raise

    def _new_client(self) -> Any:
        raise NotImplementedError

    def open_port(self, port: str | None, virtual: str | None = None) -> None:
        if virtual is not None:
            self._rt.open_virtual_port(virtual)
            return
        names = self._rt.get_ports()
        if port not in names:
            raise PortError(f"MIDI {self._kind} port {port!r} is not there")
        self._rt.open_port(names.index(port), self._own_name)

    def reopen(self, port: str) -> None:
        close_port(self._rt, self.settle)
        self.name = port
        self.open_port(port)

    def recreate(self, port: str | None) -> None:
        """A new client after the MIDI system restarted (the old one, of a server that is gone, is
        abandoned): the virtual port again, or ``port`` (None: none yet; it is opened with
        ``reopen`` when it is there)."""
        self.abandon()
        self._rt = self._new_client()
        if self.virtual:
            self.open_port(None, self._virtual)
        elif port is not None:
            self.name = port
            self.open_port(port)

    def abandon(self) -> None:
        """The MIDI server died: its client is left alone (``abandon``), never closed."""
        rt, self._rt = self._rt, None
        abandon(rt)

    def close(self) -> None:
        if self._rt is not None:
            close(self._rt, self.settle)
            self._rt = None


class RtInput(_RtPort):
    """An rtmidi input, polled (``InputPoller``): its bytes are stamped, queued, and wake the loop (``ArrivalQueue``);
    ``iter_stamped`` parses them into (arrival time, message). On JACK a ``SysexRelease`` keeps a
    cut-off sysex from silencing it."""

    _kind, _own_name = "input", "in"

    def __init__(self, api: int, client_name: str, port: str | None = None, virtual: str | None = None, wake: threading.Event | None = None, settle: Callable[[], None] | None = None) -> None:
        self._arrivals = ArrivalQueue(wake)
        self.poller = InputPoller(self._arrivals)  # never a callback on JACK's thread: see input_poller
        self._release: SysexRelease | None = None
        self._own_port: str | None = None  # our input as others see it (for the release to connect to)
        super().__init__(api, client_name, port, virtual, settle)

    def _new_client(self) -> Any:
        rt = _client("MidiIn", self.api, self.client_name)
        rt.ignore_types(sysex=False, timing=False, active_sense=True)
        self.poller.attach(rt)
        return rt

    def open_port(self, port: str | None, virtual: str | None = None) -> None:
        if not needs_sysex_release(self.api):
            super().open_port(port, virtual)
            return
        if self._release is None:
            self._release = SysexRelease(self.api, self.client_name, settle=self.settle)
        before = self._release.destinations()
        super().open_port(port, virtual)
        if self._own_port is None or self._own_port in before:
            new = [n for n in self._release.destinations() if n not in before]
            self._own_port = new[0] if len(new) == 1 else None  # another port at the same moment: unsure, none
        if self._own_port is not None:
            self._release.connect(self._own_port)

    def iter_stamped(self) -> Iterator[tuple[float, mido.Message]]:
        return self._arrivals.iter_stamped()

    @property
    def dropped(self) -> int:
        """Input events dropped while the loop stalled (``ArrivalQueue``)."""
        return self._arrivals.dropped

    def iter_pending(self) -> Iterator[mido.Message]:
        return (msg for _, msg in self._arrivals.iter_stamped())

    def reopen(self, port: str) -> None:
        self.poller.detach()  # no poll while the port closes and opens
        try:
            super().reopen(port)
        finally:
            if self._rt is not None:
                self.poller.attach(self._rt)

    def abandon(self) -> None:
        self.poller.close()  # its thread ends with the client (a rebuilt one gets a new one)
        if self._release is not None:
            self._release.close(server_gone=True)
            self._release, self._own_port = None, None
        super().abandon()

    def close(self) -> None:
        self.poller.close()
        if self._release is not None:
            self._release.close()
            self._release = None
        super().close()


class RtOutput(_RtPort):
    """An rtmidi output. The loop sends; the supervisor thread reopens and rebuilds it
    (``session.supervisor``): while it does, a send is refused at once (``OSError``), never made to
    wait, and the loop makes up for it when the output is back (``session.outage``)."""

    _kind, _own_name = "output", "out"

    def __init__(self, api: int, client_name: str, port: str | None = None, virtual: str | None = None, settle: Callable[[], None] | None = None) -> None:
        self._busy = threading.RLock()  # held while the port is reopened, rebuilt or closed (recreate abandons: re-entered)
        super().__init__(api, client_name, port, virtual, settle)

    def _new_client(self) -> Any:
        return _client("MidiOut", self.api, self.client_name)

    def send(self, msg: mido.Message) -> None:
        if not self._busy.acquire(blocking=False):
            raise OSError("the MIDI output is being reopened")
        try:
            if self._rt is None:  # the MIDI system went away and its new client could not be made yet
                raise OSError("the MIDI output is not open")
            self._rt.send_message(msg.bytes())
        finally:
            self._busy.release()

    def reopen(self, port: str) -> None:
        with self._busy:
            super().reopen(port)

    def recreate(self, port: str | None) -> None:
        with self._busy:
            super().recreate(port)

    def abandon(self) -> None:
        with self._busy:
            super().abandon()

    def close(self) -> None:
        with self._busy:
            super().close()


def needs_sysex_release(api: int) -> bool:
    """Whether rtmidi's input on ``api`` waits for a sysex's end holding everything back (JACK)."""
    return getattr(rtmidi_module(), "API_UNIX_JACK", None) == api


def open_output(name: str, api: str = "", client_name: str = "improv") -> RtOutput:
    """One output port by (part of) its name, e.g. for `improv demo --out PORT`."""
    rt_api = resolve_api(api)
    lister = reached(lambda: PortLister(rt_api))
    try:
        port = match_port(lister.outputs(), name, "output")
    finally:
        lister.close()
    return RtOutput(rt_api, client_name, port=port)
