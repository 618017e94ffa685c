"""`improv serve`: call and response with a MIDI keyboard, in real time."""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING

from improv.cli.common import add_model_arguments, add_monitor_arguments, chosen_model, monitor_choice, seed

if TYPE_CHECKING:  # the command module stays light to import: these are for the signatures only
    from improv.settings.sections import Settings


HELP = "answer a MIDI keyboard in real time: play a phrase, improv replies (call and response)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    ports = parser.add_argument_group("ports (see `improv ports`)")
    ports.add_argument("--port", metavar="NAME", help="input and output whose names contain NAME (e.g. \"IAC Bus\")")
    ports.add_argument("--in", dest="in_port", metavar="NAME", help="input port (a substring of its name)")
    ports.add_argument("--out", dest="out_port", metavar="NAME", help="output port (a substring of its name)")
    ports.add_argument("--virtual", action="store_true", help="create ports of improv's own for the sides no name is given for: on JACK improv:in and improv-01:out (JACK renames the second client 'improv'); on ALSA and CoreMIDI the ports 'in' and 'out' of clients named improv")
    ports.add_argument("--api", choices=["alsa", "jack", "coremidi", "winmm"], help="MIDI system (default: the first that runs here)")
    add_model_arguments(parser)
    parser.add_argument("--temperature", type=float, metavar="T", help="sampling temperature (default: sample.temperature; a knob can change it live)")
    parser.add_argument("--seed", type=seed, default=0, help="random seed of the answers (default: 0)")
    parser.add_argument("--bpm", type=float, help="tempo when no MIDI clock or Link session is followed: the prior for the first call, and a Link session's start (default: serve.bpm)")
    parser.add_argument("--link", action="store_true", help="join the Ableton Link session on this network (serve.link): follow its tempo and beat once a peer sets them; until then (alone, or peers keeping improv's tempo) publish the performer's tempo (needs pip install -e \".[link]\")")
    parser.add_argument("--learn", metavar="NAME", help="MIDI learn: the first controller message that arrives is bound to control NAME (`improv controls` lists them); kept in serve.controls_file")
    parser.add_argument("--mode", choices=["answer", "accompany", "loop", "solo"], help="what improv does: answer (call and response), accompany, loop, solo (default: serve.mode; a knob switches it live)")
    parser.add_argument("--record", metavar="FILE.mid", help="save the session: performer and improv on separate tracks (and FILE.png, its picture)")
    parser.add_argument("--memory", metavar="FILE", help="what improv learns of you (serve.adapt): loaded from FILE when it exists, saved there at the end, so a rehearsal's idiom carries to the gig")
    add_monitor_arguments(parser)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from improv.errors import ImprovError
    from improv.settings.load import section_from_dict
    from improv.settings.serve_section import ServeSettings

    overrides = {
        key: value
        for key, value in (
            ("port", args.port),
            ("in_port", args.in_port),
            ("out_port", args.out_port),
            ("api", args.api),
            ("bpm", args.bpm),
            ("mode", args.mode),
            ("virtual", True if args.virtual else None),
            ("link", True if args.link else None),
        )
        if value is not None
    }
    serve_settings = section_from_dict(ServeSettings, {**dataclasses.asdict(settings.serve), **overrides}, "serve")
    sample = settings.sample
    if args.temperature is not None:
        sample = section_from_dict(type(sample), {**dataclasses.asdict(sample), "temperature": args.temperature}, "sample")
    from improv.session.serve import serve_session, voice_choice

    monitor = monitor_choice(args, settings)
    voices = voice_choice(chosen_model(args, settings), settings.voice.live)
    if args.learn is not None:
        from improv.realtime.controls import control_names

        if args.learn not in control_names(serve_settings):
            raise ImprovError(f"unknown control for --learn: {args.learn!r} (one of {', '.join(control_names(serve_settings))})")
    # What the command line asks for wins over the knobs' last values in the controls file.
    keep = frozenset(name for name, given in (("temperature", args.temperature), ("mode", args.mode), ("voice", args.voice or args.checkpoint)) if given is not None)
    return serve_session(serve_settings, sample, voices, args.seed, args.record, monitor=monitor, learn=args.learn, keep=keep, memory=args.memory)
