"""`improv serve`'s session: voices loaded, ports opened, the loop run until Ctrl-C, what happened
reported, the session written (``--record``).

The order is the performer's: port names are checked first (a wrong name fails in one line before
anything loads), then the voices are loaded and warmed up, and only then are the ports opened, so
nothing played while improv was starting arrives late and gets a stale answer. Torch is never
imported here: the voices play from their ``.npz`` files.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from improv.session.controls_file import load_controls, save_controls
from improv.io.clock import RealClock
from improv.io.files import FileProblem, check_writable, read_regular_file, write_atomic
from improv.io.machine import one_blas_thread
from improv.io.rtmidi_ports import api_name
from improv.io.watched_ports import MidiPorts, PortChoice, check_names
from improv.model.sampling import SamplingParams
from improv.model.step_model import StepModel
from improv.model.voices import load_player
from improv.realtime.context import Voice
from improv.realtime.engine import Engine
from improv.realtime.memory import SessionMemory
from improv.realtime.memory_file import MAX_MEMORY_BYTES, MemoryFileError, load_memory_bytes, memory_bytes
from improv.realtime.report import Recorder
from improv.session.loop import ServeLoop
from improv.session.picture_and_audio import write_picture
from improv.session.process import serve
from improv.session.supervisor import PortSupervisor
from improv.settings.sections import SampleSettings
from improv.settings.serve_section import ServeSettings

if TYPE_CHECKING:  # the monitor's web server and Link are imported only when a session asks for them
    from improv.io.link_session import LinkSession
    from improv.monitor.live import MonitorChoice


@dataclass(frozen=True)
class VoiceChoice:
    """The voices a session loads, as files (each shows its file's name), and the one it starts with."""

    paths: Sequence[Path]
    start: int = 0


def load_voices(choice: VoiceChoice, say: Callable[[str], None]) -> tuple[list[Voice], bool]:
    """The voices as step models (torch-free), each warmed up, the starting one first; (voices,
    whether it is untrained).
    A voice whose vocabulary differs from the starting one cannot be switched to: left out, said."""
    first = load_player(choice.paths[choice.start])
    voices = [Voice(first.name, first.step_model())]
    for i, path in enumerate(choice.paths):
        if i == choice.start:
            continue
        model = load_player(path)
        if model.tokenizer != first.tokenizer:
            say(f"improv: voice {model.name} left out: its vocabulary differs from {first.name}'s, so the two cannot take turns")
            continue
        voices.append(Voice(model.name, model.step_model()))
    for voice in voices:
        warm_up(voice.model)
    return voices, bool(first.info.get("untrained"))


def warm_up(model: StepModel) -> None:
    """A few steps and samples before the first note, so no first-call cost lands on a send."""
    from improv.generation.compose import generation_pitch_mask

    rng = np.random.default_rng(0)
    state = model.initial_state()
    mask = generation_pitch_mask(allow_end=False)  # notes only, as an answer samples them
    for _ in range(8):
        row = model.sample_event(state, rng, SamplingParams(), mask)
        state = model.step(state, row)


def serve_session(
    s: ServeSettings,
    sample: SampleSettings,
    voices: VoiceChoice,
    seed: int,
    record: str | None,
    say: Callable[[str], None] | None = None,
    monitor: MonitorChoice | None = None,
    memory: str | None = None,
    learn: str | None = None,
    keep: frozenset[str] = frozenset(),
) -> int:
    """Serve until Ctrl-C/SIGTERM, then report. With ``record``, the file is checked before anything
    starts and written however the session ends, an error included, its picture beside it. With
    ``monitor``, a live page shows the session. With ``memory``, the session memory (what improv
    learned of the performer) is loaded from that file when it exists and saved there at the end.
    Returns 2 when the recording or the memory could not be written."""
    say = say or print_line
    choice = PortChoice(s.api, s.in_port or s.port, s.out_port or s.port, s.virtual, s.client_name)
    check_names(choice)  # before the models: a wrong port name fails at once
    if record:
        check_writable(record, create_folder=False)
    if memory:
        check_writable(memory, create_folder=False)
    live = link = None
    if monitor is not None:  # before the models: a port it cannot have fails in one line at once
        from improv.monitor.live import LiveMonitor

        live = LiveMonitor(monitor.host, monitor.port, monitor.seconds)
    try:
        one_blas_thread()  # before the warm-up steps: BLAS threads only wait for each other
        loaded, untrained = load_voices(voices, say)
        recorder = Recorder() if record else None
        link = join_link(s, say) if s.link else None  # before the ports: a missing library fails in one line
        engine = Engine(loaded, s, SamplingParams.from_settings(sample), seed=seed, recorder=recorder, link=link)
        if memory:
            load_memory(engine.memory, memory, say)
        engine.restore_controls(load_controls(s), 0.0, keep)  # MIDI-learned bindings and last knob values
        if learn:
            engine.learn(learn)
            say(f"improv: move the controller for {learn}: the first one that arrives is bound to it")
        wake = threading.Event()
        ports = MidiPorts(choice, wake)  # opened now: nothing played while loading arrives stale
    except BaseException:
        if live is not None:
            live.close()
        if link is not None:
            link.close()
        raise
    stats = None
    supervisor = None
    ended = False
    clock = RealClock(s.spin_ms / 1000)
    try:
        try:
            in_name, out_name = ports.describe()
            names = ", ".join(v.name for v in loaded)
            say(
                f"improv: listening on {in_name!r}, answering on {out_name!r} ({api_name(ports.api)})"
                f" · voice {loaded[0].name}{' (untrained)' if untrained else ''}"
                + (f" (of {names}: CC {s.cc_voice} or Program Change switches)" if len(loaded) > 1 else "")
                + f" · {engine.bpm:g} bpm"
                + (f" · {engine.link.describe(clock.now())}" if engine.link is not None else "")
                + (f" · mode {engine.play_mode}" + (f" (CC {s.cc_mode} switches)" if s.cc_mode >= 0 else "") if s.mode != "answer" else "")
                + " · Ctrl-C to stop"
            )
            inport, outport, status = ports.input, ports.output, say
            if live is not None:
                say(live.describe())
                inport, outport, status = live.attach(engine, s, clock, wake, inport, outport, say, loaded[0].name)
            supervisor = PortSupervisor(ports, s.reconnect_s, wake).start()  # the ports are watched off the loop's thread
            loop = ServeLoop(engine, inport, outport, clock, ports=supervisor, on_status=status, wake=wake)
            stats = serve(loop, realtime_priority=s.realtime_priority, jack_clients=ports.jack_client_priority())
            time.sleep(0.05)  # let the last note-offs leave (JACK sends on its next cycle) before closing
        finally:
            try:
                if supervisor is not None:
                    supervisor.close()  # before the ports: no check may reopen what is being closed
                ports.close()
            finally:
                if live is not None:
                    live.close()
                if link is not None:
                    link.close()  # leaves the session
        ended = True
        if any(engine.controls_saved().values()):  # something learned or turned: kept for the next start
            save_controls(s, engine.controls_saved())
        late = stats.lateness_ms()
        say(
            f"improv: {stats.exchange_count} exchanges, {stats.sent} messages sent"
            f" · lateness p50 {late['send_late_p50_ms']:.3f} ms, p99 {late['send_late_p99_ms']:.3f} ms, max {late['send_late_max_ms']:.3f} ms"
            + "".join(f" · {n} {what}" for n, what in (
                (stats.lost_sends, "messages could not reach the output"),
                (stats.faults, "errors caught, improv played on"),
                (stats.status_dropped, "status lines dropped"),
            ) if n)
        )
    finally:
        # Also after an error: what was played is kept (a session cut short by a crash has notes).
        saved = False
        if recorder is not None and record and (ended or recorder.t0 is not None):
            saved = save_recording(recorder, record, s.bpm, say, (s.performer_program, s.program))
        kept = save_memory(engine.memory, memory, clock.now(), say) if memory else True
    return 0 if (saved or not record) and kept else 2


def join_link(s: ServeSettings, say: Callable[[str], None]) -> LinkSession:
    """The Link session joined (serve --link), a moment given to find peers already there."""
    from improv.io.link_session import LinkSession

    link = LinkSession(s.bpm, s.link_quantum)
    deadline = time.monotonic() + 1.0  # Link peers answer within a few hundred ms on a LAN
    while time.monotonic() < deadline and (link.view() is None or link.view().peers == 0):
        time.sleep(0.05)
    return link


def load_memory(memory: SessionMemory, path: str, say: Callable[[str], None]) -> None:
    """The session memory saved at ``path`` (a rehearsal's), or a note that it starts empty."""
    if not Path(path).exists():
        say(f"improv: no session memory in {path} yet: it starts empty and is saved there at the end")
        return
    try:
        data = read_regular_file(path, MAX_MEMORY_BYTES)
    except FileProblem as exc:
        raise MemoryFileError(f"cannot read the session memory {path}: {exc}") from None
    load_memory_bytes(memory, data, path)
    say(f"improv: session memory {path}: {memory.events} events remembered")


def save_memory(memory: SessionMemory, path: str, now: float, say: Callable[[str], None]) -> bool:
    """What improv learned this session, written to ``path`` (atomically); a failure is one line."""
    try:
        write_atomic(path, memory_bytes(memory, now))
    except OSError as exc:
        print(f"improv: error: cannot write the session memory to {path}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return False
    say(f"improv: session memory saved to {path}: {memory.events} events")
    return True


def print_line(line: str) -> None:
    """A line on stdout; a terminal that is gone (closed after SIGHUP) loses it, the session goes on."""
    try:
        print(line, flush=True)
    except OSError:
        pass


def save_recording(recorder: Recorder, record: str, bpm: float, say: Callable[[str], None], programs: tuple[int, int] = (0, 0)) -> bool:
    """Write the session (performer and improv on separate tracks and General MIDI ``programs``, at
    the session's tempi, a marker per exchange) and its picture beside it; a failure to write the
    file is one line on stderr."""
    try:
        write_atomic(record, recorder.midi(bpm, programs))
    except OSError as exc:
        print(f"improv: error: cannot write the recording to {record}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return False
    counts = {who: len(notes) for who, notes in recorder.notes.items()}
    picture = write_picture(record, say)
    shown = f" · see it: {picture}" if picture is not None else ""
    say(f"improv: recorded {record}: performer {counts['performer']} notes, improv {counts['improv']} notes{shown}")
    return True


def voice_choice(start: Path, live: Sequence[str]) -> VoiceChoice:
    """The session's voices: ``start`` first, then the others ``live`` names (voices or files;
    empty: every shipped voice), each once."""
    from improv.model.voices import model_location, voice_names

    paths = [start]
    for name in list(live) or voice_names():
        path = model_location(None, None, name)
        if path.resolve() not in {p.resolve() for p in paths}:
            paths.append(path)
    return VoiceChoice(paths, 0)
