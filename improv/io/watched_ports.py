"""The pair of ports a session serves on, watched: a named port that vanishes (a keyboard
unplugged) is reported and reopened when a port of that name is back; the MIDI system failing is
reported once, not at every look; the JACK server dying is said in one line, and improv rebuilds
its clients and ports (virtual and named) when the server is back (``jack_watch``).

``check_choice`` resolves the MIDI system and the names *before* the models load (a wrong name
fails in one line at once), and ``MidiPorts`` opens them after the warm-up, so nothing played
while improv was starting reaches it stale. ``--virtual`` makes improv's own ports for the sides
no name was given for: ``--virtual --out FLUID`` is a virtual input and FluidSynth's port.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from improv.errors import PortError
from improv.io.jack_ports import JackLister
from improv.io.jack_watch import JackWatch
from improv.io.rtmidi_ports import (
    PortLister,
    RtInput,
    RtOutput,
    api_name,
    match_port,
    reached,
    resolve_api,
    rtmidi_module,
)


@dataclass
class PortChoice:
    """What the user asked for: names (substrings) per side, or virtual ports."""

    api: str = ""
    in_name: str = ""
    out_name: str = ""
    virtual: bool = False
    client_name: str = "improv"


class MidiPorts:
    """The input and output improv serves on, watched: a named port that vanishes (a keyboard
    unplugged) is reported and reopened when a port matching the same name is back."""

    def __init__(self, choice: PortChoice, wake: threading.Event | None = None) -> None:
        self.choice = choice
        self.api = resolve_api(choice.api)
        self.lister = reached(lambda: port_lister(self.api, choice.client_name))
        self.input: RtInput | None = None
        self.output: RtOutput | None = None
        self.lost: dict[str, bool] = {"input": False, "output": False}
        self._system_problem: str | None = None  # the last failure to list the ports, reported once
        self.watch: JackWatch | None = None  # hears the JACK server go away
        self.server_lost = False  # it did; the ports are rebuilt when it is back
        self._retry_said = False
        self._virtual_names = (f"{choice.client_name}:in", f"{choice.client_name}:out")  # as others see them
        try:
            in_port, out_port = check_names(choice, self.lister)
            before = self._own_candidates() if in_port is None or out_port is None else ([], [])  # to tell ours from another improv's
            self.input = RtInput(self.api, choice.client_name, port=in_port, virtual=None if in_port else "in", wake=wake, settle=self._settle)
            self.output = RtOutput(self.api, choice.client_name, port=out_port, virtual=None if out_port else "out", settle=self._settle)
            if in_port is None or out_port is None:
                self._virtual_names = self._names_since(before)  # now: another improv may open its own later
            self._watch()
        except BaseException:
            self.close()
            raise

    def describe(self) -> tuple[str, str]:
        """(input, output) as other programs see them: for virtual ports, the names they got."""
        assert self.input is not None and self.output is not None
        return (
            self._virtual_names[0] if self.input.virtual else self.input.name,
            self._virtual_names[1] if self.output.virtual else self.output.name,
        )

    def _settle(self) -> None:
        """Before one of its ports closes: every JACK client's notifications handled, through the
        session's lister (``rtmidi_client``'s close race); nothing elsewhere."""
        settle = getattr(self.lister, "settle", None)
        if settle is not None:
            settle()

    def jack_client_priority(self) -> int | None:
        """JACK's client threads' real-time priority (0: JACK is not real-time); None when not on
        JACK or JACK cannot be asked (``jack_watch``)."""
        return self.watch.client_priority() if self.watch is not None else None

    def _names_since(self, before: tuple[list[str], list[str]]) -> tuple[str, str]:
        """The names our virtual ports got: JACK renames a second client of the same name
        (improv-01), ALSA appends numbers, so look for the ports that appeared as ours opened."""
        client = self.choice.client_name
        ins, outs = self._own_candidates()
        new_ins = [n for n in ins if n not in before[0]] or ins
        new_outs = [n for n in outs if n not in before[1]] or outs
        return (new_ins[-1] if new_ins else f"{client}:in"), (new_outs[-1] if new_outs else f"{client}:out")

    def _own_candidates(self) -> tuple[list[str], list[str]]:
        """Ports that could be our virtual ones: (our input, as others see it, among their outputs; ours out)."""
        client = self.choice.client_name
        try:
            ins = [n for n in self.lister.outputs() if n.startswith(client) and "in" in n[len(client):]]
            outs = [n for n in self.lister.inputs() if n.startswith(client) and "out" in n[len(client):]]
        except rtmidi_module().RtMidiError:
            return [], []
        return ins, outs

    def check(self) -> list[tuple[str, str]]:
        """Look for vanished or returned ports: [(event, message)], event in lost-input,
        lost-output, back-input, back-output, retry-input, retry-output, and system-error /
        system-back when the MIDI system itself cannot list its ports (reported once, not every
        check). Virtual ports are ours and never vanish."""
        events: list[tuple[str, str]] = []
        if self.server_lost or (self.watch is not None and self.watch.gone.is_set()):
            return self._server_check()
        try:
            inputs, outputs = self.lister.inputs(), self.lister.outputs()
        except rtmidi_module().RtMidiError as exc:  # the MIDI system itself failed: say so once, keep serving
            problem = f"cannot list the MIDI ports ({exc}); still trying"
            if problem != self._system_problem:
                events.append(("system-error", problem))
            self._system_problem = problem
            return events
        if self._system_problem is not None:
            events.append(("system-back", "the MIDI ports can be listed again"))
            self._system_problem = None
        for side, port, names, wanted in (
            ("input", self.input, inputs, self.choice.in_name),
            ("output", self.output, outputs, self.choice.out_name),
        ):
            assert port is not None
            if port.virtual:
                continue
            if not self.lost[side]:
                if port.name not in names:
                    self.lost[side] = True
                    events.append((f"lost-{side}", f"MIDI {side} {port.name!r} vanished; waiting for it to come back"))
                continue
            try:
                found = match_port(names, wanted, side)
            except PortError:
                continue
            try:
                port.reopen(found)
            except (PortError, rtmidi_module().RtMidiError) as exc:
                events.append((f"retry-{side}", f"MIDI {side} {found!r} is back but would not open ({exc}); retrying"))
                continue
            self.lost[side] = False
            events.append((f"back-{side}", f"MIDI {side} {found!r} is back"))
        return events

    def _watch(self) -> None:
        """On JACK: a client that hears the server go away (libjack's shutdown callback)."""
        if api_name(self.api) == "jack":
            watch = JackWatch(self.choice.client_name)
            self.watch = watch if watch.available else None

    def _server_check(self) -> list[tuple[str, str]]:
        """The JACK server went away: say so once; when it is back, rebuild every client."""
        events: list[tuple[str, str]] = []
        if not self.server_lost:
            self.server_lost = True
            events.append(("system-lost", "the JACK server stopped; improv waits for it and reopens its ports when it is back"))
        try:
            lister = port_lister(self.api, self.choice.client_name)
        except PortError:
            return events  # not back yet
        self._drop_clients()
        self.lister = lister
        try:
            self._rebuild()
        except (PortError, rtmidi_module().RtMidiError) as exc:  # gone again at once: the next check retries
            if not self._retry_said:
                events.append(("retry-system", f"the JACK server is back but improv's ports would not open ({exc}); retrying"))
            self._retry_said = True
            return events
        self._retry_said = False
        self.server_lost = False
        in_name, out_name = self.describe()
        waiting = "".join(f"; waiting for MIDI {side} {port.name!r}" for side, port in (("input", self.input), ("output", self.output)) if self.lost[side] and port is not None)
        events.append(("system-back", f"the JACK server is back: listening on {in_name!r}, answering on {out_name!r}{waiting}"))
        return events

    def _drop_clients(self) -> None:
        """The clients of the dead server: left alone (``rtmidi_ports.abandon``), never closed."""
        watch, self.watch = self.watch, None
        if watch is not None:
            watch.close()
        self.lister.close(server_gone=True)
        for port in (self.input, self.output):
            if port is not None:
                port.abandon()

    def _rebuild(self) -> None:
        """Every client again, on the new server: virtual ports as before (their names may differ
        now), named ones when a port of that name is there (else they count as lost, and come back
        as a vanished keyboard does)."""
        assert self.input is not None and self.output is not None
        self._watch()  # first: a rebuild that cannot watch the server is retried before any port is made
        if self.watch is None:
            raise PortError("cannot watch the JACK server")
        before = self._own_candidates()
        for side, port, names, wanted in (
            ("input", self.input, self.lister.inputs(), self.choice.in_name),
            ("output", self.output, self.lister.outputs(), self.choice.out_name),
        ):
            found = None
            if not port.virtual:
                try:
                    found = match_port(names, wanted, side)
                except PortError:
                    found = None
            port.recreate(found)
            self.lost[side] = not port.virtual and found is None
        if self.input.virtual or self.output.virtual:
            self._virtual_names = self._names_since(before)

    def close(self) -> None:
        if self.server_lost or (self.watch is not None and self.watch.gone.is_set()):
            self._drop_clients()  # the server died under them: closing them would crash
            return
        # The output first: its close hands the last note-offs on (RtMidi's JACK output waits for
        # its buffer to drain, by its source) before the input's, where rtmidi on a loaded JACK can crash.
        for port in (self.output, self.input):
            if port is not None:
                port.close()
        if self.watch is not None:
            self.watch.close()
        self.lister.close()




def port_lister(api: int, client_name: str) -> PortLister | JackLister:
    """What a session lists ports with: on JACK a client JACK never schedules (``jack_ports``:
    rtmidi's lister is two clients in every cycle), elsewhere rtmidi's."""
    return JackLister(f"{client_name}-list") if api_name(api) == "jack" else PortLister(api)


def check_names(choice: PortChoice, lister: PortLister | JackLister | None = None) -> tuple[str | None, str | None]:
    """The ports the choice names, matched now (None for a side improv makes a virtual port
    for); a name that matches nothing, or several, is a one-line ``PortError``."""
    if not choice.virtual and (not choice.in_name or not choice.out_name):
        raise PortError("name the MIDI ports: --port NAME (or --in NAME and --out NAME), or use --virtual; `improv ports` lists them")
    own = lister is None
    lister = lister or reached(lambda: PortLister(resolve_api(choice.api)))  # the MIDI system must be there, at least
    try:
        if not choice.in_name and not choice.out_name:
            return None, None
        in_port = match_port(lister.inputs(), choice.in_name, "input") if choice.in_name else None
        out_port = match_port(lister.outputs(), choice.out_name, "output") if choice.out_name else None
    finally:
        if own:
            lister.close()
    return in_port, out_port
