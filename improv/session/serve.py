"""`improv serve`: call and response with a MIDI keyboard, in real time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable


if TYPE_CHECKING:  # the command module stays light to import: these are for the signatures only
    from improv.settings.sections import SampleSettings, ServeSettings
    from improv.model.step_model import StepModel
    from improv.realtime.report import Recorder
    from improv.model.sampling import SamplingParams


def serve_session(s: ServeSettings, sample: SampleSettings, checkpoint: str, seed: int, record: str | None) -> int:
    """Open the ports, load the model, serve until Ctrl-C/SIGTERM, then report.

    With ``record``, the file is checked before anything starts (a path that cannot be written is
    a one-line error now, not after the session), and the session is written there however it
    ends, an error included. Returns 2 when the recording could not be written.
    """
    import threading
    import time
    from pathlib import Path

    from improv.io.clock import RealClock
    from improv.realtime.engine import Engine
    from improv.io.rtmidi_ports import MidiPorts, PortChoice, api_name
    from improv.realtime.report import Recorder
    from improv.model.sampling import SamplingParams
    from improv.session.loop import ServeLoop
    from improv.session.process import serve
    from improv.io.files import check_writable

    path = Path(checkpoint)
    if record:
        check_writable(record, create_folder=False)

    def status(line: str) -> None:
        print(line, flush=True)

    wake = threading.Event()
    choice = PortChoice(s.api, s.in_port or s.port, s.out_port or s.port, s.virtual, s.client_name)
    ports = MidiPorts(choice, wake)  # before the model: a wrong port name fails fast
    recorder = Recorder() if record else None
    ended = saved = False
    try:
        try:
            from improv.model.checkpoint import load_checkpoint

            from improv.io.machine import one_blas_thread

            one_blas_thread()  # before the warm-up steps: BLAS threads only wait for each other
            ckpt = load_checkpoint(path)
            model = ckpt.step_model()
            params = SamplingParams.from_settings(sample)
            engine = Engine(model, s, params, seed=seed, recorder=recorder)
            _warm_up(model, params)
            in_name, out_name = ports.describe()
            untrained = " (untrained)" if ckpt.train.get("untrained") else ""
            status(
                f"improv: listening on {in_name!r}, answering on {out_name!r} ({api_name(ports.api)})"
                f" · model {path}{untrained} · {engine.bpm:g} bpm · Ctrl-C to stop"
            )
            loop = ServeLoop(
                engine,
                ports.input,
                ports.output,
                RealClock(s.spin_ms / 1000),
                ports=None if s.virtual else ports,
                on_status=status,
                wake=wake,
                reconnect_s=s.reconnect_s,
            )
            stats = serve(loop, realtime_priority=s.realtime_priority)
            time.sleep(0.05)  # let the last note-offs leave (JACK sends on its next cycle) before closing
        finally:
            ports.close()
        ended = True
        late = stats.lateness_ms()
        status(
            f"improv: {len(stats.exchanges)} exchanges, {stats.sent} messages sent"
            f" · lateness p50 {late['send_late_p50_ms']:.3f} ms, p99 {late['send_late_p99_ms']:.3f} ms, max {late['send_late_max_ms']:.3f} ms"
        )
    finally:
        # Also after an error: what was played is kept (a session cut short by a crash has notes).
        if recorder is not None and record and (ended or recorder.t0 is not None):
            saved = save_recording(recorder, record, s.record_bpm, status)
    return 0 if saved or not record else 2


def save_recording(recorder: Recorder, record: str, bpm: float, status: Callable[[str], None]) -> bool:
    """Write the session (performer and improv on separate tracks); a failure is one line on stderr."""
    import sys
    from pathlib import Path

    from improv.music.midi import midi_bytes

    tracks = recorder.tracks(bpm)
    try:
        Path(record).write_bytes(midi_bytes(tracks, bpm))
    except OSError as exc:
        print(f"improv: error: cannot write the recording to {record}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return False
    status(f"improv: recorded {record}: " + ", ".join(f"{t.name} {len(t.notes)} notes" for t in tracks))
    return True


def _warm_up(model: StepModel, params: SamplingParams) -> None:
    """A few steps and samples before the first note, so no first-call cost lands on a send."""
    import numpy as np

    from improv.generation.compose import generation_pitch_mask

    rng = np.random.default_rng(0)
    state = model.initial_state()
    mask = generation_pitch_mask(allow_end=False)  # notes only, as an answer samples them
    for _ in range(8):
        row = model.sample_event(state, rng, params, mask)
        state = model.step(state, row)
