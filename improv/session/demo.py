"""`improv demo`'s session: the built-in performer (``demo.py``'s plan) plays into the real engine
and serve loop, on the real clock or simulated time, optionally also through a MIDI port, and the
session is written to a MIDI file. The command (``commands/demo.py``) only parses and calls
``run_demo``.

The file is checked for writing before anything is played (a wrong path costs no session), and
written however the session ends: an exception (a second Ctrl-C) still leaves what was played.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import mido
import numpy as np

from improv.io.clock import FakeClock, RealClock
from improv.io.files import check_writable, write_atomic
from improv.io.machine import one_blas_thread
from improv.io.memory_ports import MemoryOutput, ScriptedInput
from improv.io.jack_watch import jack_client_priority
from improv.io.rtmidi_ports import api_name, open_output
from improv.model.sampling import SamplingParams
from improv.model.voices import load_player
from improv.music.midi import Track
from improv.realtime.calls import threshold_s
from improv.realtime.engine import LISTEN, Engine
from improv.realtime.report import Recorder
from improv.session.demo_calls import demo_phrases
from improv.session.demo_plan import (
    Phrase,
    call_messages,
    plan_session,
    summary,
)
from improv.session.loop import ServeLoop
from improv.session.picture_and_audio import write_audio, write_picture
from improv.session.process import serve
from improv.settings.sections import DemoSettings, SampleSettings, Settings
from improv.settings.serve_section import ServeSettings

if TYPE_CHECKING:  # the monitor's web server is imported only when a session asks for it
    from improv.monitor.live import LiveMonitor, MonitorChoice


ANSWER_RATIO = 1.25  # an answer ending as a phrase runs a little past the call's length (up to 1.5)


def run_demo(
    settings: Settings,
    demo: DemoSettings,
    sample: SampleSettings,
    *,
    checkpoint: str,
    record: str,
    fast: bool,
    out_port: str | None,
    api: str,
    seed: int,
    quiet: bool = False,
    monitor: MonitorChoice | None = None,
) -> dict:
    """Load the model and the phrases, play the session, write the file, then its picture and (with
    FluidSynth and a SoundFont) its sound beside it; the summary as a dict. With ``monitor``, a live
    page shows the session as it plays."""

    say = (lambda line: None) if quiet else (lambda line: print(line, flush=True))
    check_writable(record, create_folder=False)
    live = None
    if monitor is not None:  # first: a port it cannot have fails in one line before anything loads or is written
        from improv.monitor.live import LiveMonitor

        live = LiveMonitor(monitor.host, monitor.port, monitor.seconds)
    try:
        one_blas_thread()  # one model step at a time, in fast mode too
        path = Path(checkpoint)
        ckpt = load_player(path)
        phrases, origin = demo_phrases(demo, settings.corpus, ckpt.tokenizer, ckpt.info, np.random.default_rng(seed), settings.serve)
        programs = (settings.serve.performer_program, settings.serve.program)
        port = open_output(out_port, api, settings.serve.client_name) if out_port else None
        recorder = Recorder()
        ended = False
        try:
            if port is not None:  # the two parts on their own instruments, as in the file
                port.send(mido.Message("program_change", channel=demo.performer_channel - 1, program=programs[0]))
                port.send(mido.Message("program_change", channel=settings.serve.channel - 1, program=programs[1]))
            untrained = " (untrained)" if ckpt.info.get("untrained") else ""
            say(
                f"improv demo: {len(phrases)} calls cut from {origin} · voice {path.stem}{untrained}"
                f" · {'simulated' if fast else 'real'} time{f' · playing on {port.name!r}' if port else ''}"
            )
            clock = FakeClock() if fast else RealClock(settings.serve.spin_ms / 1000)
            if live is not None:
                say(live.describe())
            result, _, _ = play_session(
                ckpt.step_model(), phrases, settings.serve, demo, sample, clock, seed,
                port=port, on_status=say, real_time=not fast, recorder=recorder, monitor=live, voice_label=path.stem,
            )  # fmt: skip
            ended = True
        finally:
            try:
                if port is not None:
                    port.close()
            finally:
                if ended or recorder.t0 is not None:  # what was played is kept, an error included; nothing played replaces no file
                    write_atomic(record, recorder.midi(phrases[0].bpm, programs))
        result["file"] = str(record)
        _print_summary(result, say)
        picture = write_picture(record, say, "improv demo")
        audio = write_audio(record, settings.render, say, "improv demo")
        result["picture"] = str(picture) if picture is not None else None
        result["audio"] = str(audio) if audio is not None else None
        if picture is not None:
            say(f"improv demo: see it: {picture}")
        return result
    finally:
        if live is not None:
            live.close()


def play_session(
    model: Any,
    phrases: list[Phrase],
    serve_settings: ServeSettings,
    demo: DemoSettings,
    sample: SampleSettings,
    clock: Any,
    seed: int,
    *,
    port: Any = None,
    on_status: Callable[[str], None] | None = None,
    real_time: bool = False,
    recorder: Recorder | None = None,
    monitor: LiveMonitor | None = None,
    voice_label: str = "",
) -> tuple[dict, list[Track], list]:
    """The performer plays ``phrases`` into an engine running ``model`` on ``clock``.

    Returns (summary dict, the recorded tracks, every message improv sent with its time).
    ``port`` (optional) also hears both parts. ``recorder`` (optional, else a new one) keeps what
    was played, also when the session ends in an exception. ``monitor`` (optional, real time)
    shows the session on its live page (``voice_label`` names the voice there).
    """
    serve_settings = dataclasses.replace(serve_settings, bpm=phrases[0].bpm)
    calls, end = plan_session(
        phrases, clock.now() + 0.5, threshold_s(serve_settings, phrases[0].bpm), demo.barge_every, demo.breath_beats,
        serve_settings.answer_grid_beats, serve_settings.answer_lead_beats, ANSWER_RATIO if serve_settings.phrase_ending else 1.0
    )
    script = ScriptedInput(clock)
    for call in calls:
        for t, msg in call_messages(call, demo.performer_channel - 1):
            script.add(t, msg)
    recorder = recorder if recorder is not None else Recorder()
    engine = Engine(model, serve_settings, SamplingParams.from_settings(sample), seed=seed, recorder=recorder)
    engine.tempo_source = phrases[0].bpm_source  # the first piece's own tempo is not "config"
    # The plan's end is a guess (the engine's tempo estimate and phrase endings decide how long an
    # answer lasts): the session ends when the last answer has finished, at ``latest`` at the latest.
    latest = end + 3 * ANSWER_RATIO * max(p.seconds for p in phrases) + 2.0
    performer = _EndsWhenQuiet(script, engine, clock, end)
    memory = MemoryOutput(clock)
    inport = _Audible(performer, port) if port is not None else performer
    outport = _Tee(memory, port) if port is not None else memory
    wake = threading.Event()
    if monitor is not None:
        inport, outport, on_status = monitor.attach(engine, serve_settings, clock, wake, inport, outport, on_status or (lambda line: None), voice_label)
    loop = ServeLoop(engine, inport, outport, clock, on_status=on_status, wake=wake)
    performer.stop = loop.request_stop
    if real_time:
        on_jack = port is not None and api_name(getattr(port, "api", -1)) == "jack"
        jack_clients = jack_client_priority(serve_settings.client_name) if on_jack else None  # the loop runs below them
        stats = serve(loop, until=latest, realtime_priority=serve_settings.realtime_priority, jack_clients=jack_clients)
    else:
        stats = loop.run(until=latest)
    tracks = recorder.tracks(phrases[0].bpm)
    counts = {t.name: len(t.notes) for t in tracks}
    result = summary(stats.exchanges, calls, counts.get("performer", 0), counts.get("improv", 0), stats.lateness_ms(), real_time)
    return result, tracks, memory.sent


class _EndsWhenQuiet:
    """The performer's input, which also ends the session once the plan's end has passed, every
    call has been played and the engine has nothing left to send: the last answer is heard to its
    end, not cut off by a fixed end time."""

    POLL_S = 0.05  # how often a finished plan looks again while the last answer plays

    def __init__(self, inner: ScriptedInput, engine: Engine, clock: Any, end: float) -> None:
        self.inner, self.engine, self.clock, self.end = inner, engine, clock, end
        self.stop: Callable[[], None] = lambda: None

    def next_arrival(self) -> float | None:
        t = self.inner.next_arrival()
        if t is not None:
            return t
        now = self.clock.now()
        return self.end if now < self.end else now + self.POLL_S

    def iter_stamped(self):
        yield from self.inner.iter_stamped()
        if self.clock.now() >= self.end and self.inner.next_arrival() is None and self.engine.mode == LISTEN and self.engine.next_deadline() is None:
            self.stop()


class _Tee:
    """Sends to the in-memory record and to a real port."""

    def __init__(self, *outs: Any) -> None:
        self.outs = outs

    def send(self, msg: Any) -> None:
        for out in self.outs:
            out.send(msg)


class _Audible:
    """The performer's input, also played on the port as it arrives (so the calls are heard)."""

    def __init__(self, inner: ScriptedInput, port: Any) -> None:
        self.inner = inner
        self.port = port

    def next_arrival(self) -> float | None:
        return self.inner.next_arrival()

    def iter_stamped(self):
        for t, msg in self.inner.iter_stamped():
            self.port.send(msg)
            yield t, msg


def _print_summary(r: dict, say: Callable[[str], None]) -> None:
    say(
        f"improv demo: {r['exchanges']} exchanges ({r['barge_ins']} barge-ins"
        f"{f', {n} answers not begun: the next call came first' if (n := r.get('not_begun')) else ''}), "
        f"performer {r['performer_notes']} notes, improv {r['improv_notes']} notes -> {r['file']}"
    )
    if r["first_note_after_threshold_ms_median"] is not None:
        say(
            f"improv demo: end of call -> first answer note: median {r['first_note_after_threshold_ms_median']:.3f} ms, "
            f"max {r['first_note_after_threshold_ms_max']:.3f} ms beyond the silence threshold "
            f"(a musical wait for the beat, median {r['answer_wait_ms_median']:.1f} ms; machine overhead "
            f"median {r['response_overhead_ms_median']:.3f} ms, max {r['response_overhead_ms_max']:.3f} ms)"
        )
    if r["real_time"]:
        say(
            f"improv demo: send lateness p50 {r['send_late_p50_ms']:.3f} ms, p99 {r['send_late_p99_ms']:.3f} ms, "
            f"max {r['send_late_max_ms']:.3f} ms"
        )
