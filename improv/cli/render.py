"""`improv render`: a MIDI file to a WAV file through FluidSynth, at a normalised loudness."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "render a MIDI file to WAV through FluidSynth and a General MIDI SoundFont (loudness normalised)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("midi", metavar="FILE.mid", help="the MIDI file to hear (any: a session, a generated piece, your own)")
    parser.add_argument("--out", metavar="FILE.wav", help="where the audio goes (default: FILE.wav beside the MIDI file)")
    parser.add_argument("--soundfont", metavar="SF2", help="SoundFont to play with (default: render.soundfont, $IMPROV_SOUNDFONT, else the first General MIDI one found)")


def run(args: argparse.Namespace, settings: Any) -> int:
    from improv.render.fluidsynth import render_file

    r = settings.render
    done = render_file(args.midi, args.out, args.soundfont or r.soundfont or None, r.sample_rate, r.peak_dbfs)
    print(
        f"improv: rendered {done.path} ({done.seconds:.1f} s at {r.sample_rate} Hz, peak {done.peak_dbfs:.1f} dBFS;"
        f" the synth gave {done.synth_peak_dbfs:.1f}) with {done.soundfont} in {done.elapsed_s:.1f} s"
    )
    return 0
