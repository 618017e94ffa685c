"""`improv demo`: a whole call-and-response session without any MIDI hardware.

A built-in performer plays phrases from music21's corpus into the real engine on the real clock
(or simulated time with --fast); improv answers; some calls barge in. The session is written to
a MIDI file (performer and improv on separate tracks) and a summary gives the timing figures.
With --out PORT the same session also plays through a MIDI port, so a synth makes it audible.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from . import seed

HELP = "hear improv without a keyboard: a built-in performer plays calls, improv answers (writes demo.mid)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", metavar="FILE", help="model to play (default: generate.checkpoint)")
    parser.add_argument("--calls", type=int, metavar="N", help="calls the performer plays (default: demo.calls)")
    parser.add_argument("--fast", action="store_true", help="simulated time: the whole session at once")
    parser.add_argument("--out", metavar="PORT", help="also play through this MIDI output port (a substring of its name)")
    parser.add_argument("--api", choices=["alsa", "jack", "coremidi", "winmm"], help="MIDI system for --out")
    parser.add_argument("--record", metavar="FILE.mid", help="where the session is written (default: demo.record)")
    parser.add_argument("--seed", type=seed, default=0, help="random seed: which phrases, and improv's answers (default: 0)")
    parser.add_argument("--temperature", type=float, metavar="T", help="sampling temperature (default: sample.temperature)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def run(args: argparse.Namespace, settings) -> int:
    from ..checkpoint import model_path
    from ..config import DemoSettings, SampleSettings, section_from_dict
    from ..errors import ImprovError

    demo = settings.demo
    if args.calls is not None:
        demo = section_from_dict(DemoSettings, {**dataclasses.asdict(demo), "calls": args.calls}, "demo")
    sample = settings.sample
    if args.temperature is not None:
        sample = section_from_dict(SampleSettings, {**dataclasses.asdict(sample), "temperature": args.temperature}, "sample")
    if args.fast and args.out:
        raise ImprovError("--out plays through a port in real time; drop --fast to hear it")
    result = run_demo(
        settings,
        demo,
        sample,
        checkpoint=str(model_path(args.checkpoint, settings.generate.checkpoint)),
        record=args.record or demo.record,
        fast=args.fast,
        out_port=args.out,
        api=args.api or settings.serve.api,
        seed=args.seed,
        quiet=args.json,
    )
    if args.json:
        print(json.dumps(result, indent=2))
    return 0 if result["answered"] > 0 else 1


def run_demo(settings, demo, sample, *, checkpoint: str, record: str, fast: bool, out_port: str | None, api: str, seed: int, quiet: bool = False) -> dict:
    """Load the model and the phrases, play the session, write the file; the summary as a dict."""
    from pathlib import Path

    import numpy as np

    from ..checkpoint import load_checkpoint
    from ..clock import FakeClock, RealClock
    from ..errors import ImprovError
    from ..midi_io import midi_bytes
    from ..ports import open_output

    say = (lambda line: None) if quiet else (lambda line: print(line, flush=True))
    path = Path(checkpoint)
    if not Path(record).resolve().parent.is_dir():
        raise ImprovError(f"cannot write {record}: its folder does not exist")
    ckpt = load_checkpoint(path)
    phrases = _phrases(settings, demo, ckpt.tokenizer, np.random.default_rng(seed))
    port = open_output(out_port, api, settings.serve.client_name) if out_port else None
    untrained = " (untrained)" if ckpt.train.get("untrained") else ""
    say(
        f"improv demo: {len(phrases)} calls cut from {demo.source} · model {path}{untrained}"
        f" · {'simulated' if fast else 'real'} time{f' · playing on {port.name!r}' if port else ''}"
    )
    clock = FakeClock() if fast else RealClock(settings.serve.spin_ms / 1000)
    try:
        result, tracks, _ = play_session(ckpt.step_model(), phrases, settings.serve, demo, sample, clock, seed, port=port, on_status=say, real_time=not fast)
    finally:
        if port is not None:
            port.close()
    Path(record).write_bytes(midi_bytes(tracks, phrases[0].bpm))
    result["file"] = str(record)
    _print_summary(result, say)
    return result


def play_session(model, phrases, serve_settings, demo, sample, clock, seed: int, *, port=None, on_status=None, real_time: bool = False):
    """The performer plays ``phrases`` into an engine running ``model`` on ``clock``.

    Returns (summary dict, the recorded tracks, every message improv sent with its time).
    ``port`` (optional) also hears both parts.
    """
    from ..demo import call_messages, plan_session, summary
    from ..engine import Engine, Recorder
    from ..ports import MemoryOutput, ScriptedInput
    from ..sampling import SamplingParams
    from ..serve_loop import ServeLoop, serve

    serve_settings = dataclasses.replace(serve_settings, bpm=phrases[0].bpm)
    calls, end = plan_session(
        phrases, clock.now() + 0.5, serve_settings.silence_ms / 1000, demo.barge_every, demo.breath_beats, serve_settings.answer_grid_beats
    )
    performer = ScriptedInput(clock)
    for call in calls:
        for t, msg in call_messages(call, demo.performer_channel - 1):
            performer.add(t, msg)
    recorder = Recorder()
    engine = Engine(model, serve_settings, SamplingParams.from_settings(sample), seed=seed, recorder=recorder)
    memory = MemoryOutput(clock)
    inport = _Audible(performer, port) if port is not None else performer
    outport = _Tee(memory, port) if port is not None else memory
    loop = ServeLoop(engine, inport, outport, clock, on_status=on_status)
    if real_time:
        stats = serve(loop, until=end, realtime_priority=serve_settings.realtime_priority)
    else:
        stats = loop.run(until=end)
    tracks = recorder.tracks(phrases[0].bpm)
    counts = {t.name: len(t.notes) for t in tracks}
    result = summary(stats.exchanges, calls, counts.get("performer", 0), counts.get("improv", 0), stats.lateness_ms(), real_time)
    return result, tracks, memory.sent


def _phrases(settings, demo, tokenizer, rng):
    """One phrase per call, each from a different work of ``demo.source`` (tempo from the work)."""
    from ..corpus import load_corpus, resolve_sources
    from ..demo import cut_phrase
    from ..errors import ImprovError

    works = resolve_sources([demo.source])
    order = rng.permutation(len(works))
    phrases = []
    for start in range(0, len(order), demo.calls):  # a few more works when some cannot be read
        chosen = [works[i].name for i in order[start : start + demo.calls]]
        pieces, _ = load_corpus(chosen, tokenizer, settings.corpus, progress=False)
        for piece in pieces:
            phrase = cut_phrase(tokenizer.decode(piece.tokens), piece.name, piece.bpm or demo.bpm, demo.phrase_beats, rng)
            if phrase is not None:
                phrases.append(phrase)
        if len(phrases) >= demo.calls:
            return phrases[: demo.calls]
    if not phrases:
        raise ImprovError(f"no playable phrase found in {demo.source}")
    return phrases


class _Tee:
    """Sends to the in-memory record and to a real port."""

    def __init__(self, *outs) -> None:
        self.outs = outs

    def send(self, msg) -> None:
        for out in self.outs:
            out.send(msg)


class _Audible:
    """The performer's input, also played on the port as it arrives (so the calls are heard)."""

    def __init__(self, inner, port) -> None:
        self.inner = inner
        self.port = port

    def next_arrival(self):
        return self.inner.next_arrival()

    def iter_stamped(self):
        for t, msg in self.inner.iter_stamped():
            self.port.send(msg)
            yield t, msg


def _print_summary(r: dict, say) -> None:
    say(
        f"improv demo: {r['exchanges']} exchanges ({r['barge_ins']} barge-ins), "
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
