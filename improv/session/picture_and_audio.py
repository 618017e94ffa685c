"""What a session leaves beside its MIDI file: its picture (``NAME.png``, always) and, for the demo,
its sound (``NAME.wav``, when FluidSynth and a SoundFont are there).

Neither may cost the session: the MIDI file is already written, so a failure here is one line
saying what is missing and how to get it, never an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from improv.errors import ImprovError
from improv.settings.sections import RenderSettings


def write_picture(midi_path: str | Path, say: Callable[[str], None], prefix: str = "improv") -> Path | None:
    """``NAME.png`` beside ``NAME.mid``; None (and one line) if it cannot be drawn."""
    from improv.render.pianoroll import plot_file

    out = Path(midi_path).with_suffix(".png")
    try:
        plot_file(midi_path, out)
    except (ImprovError, OSError, ValueError) as exc:
        say(f"{prefix}: no picture {out.name}: {exc}")
        return None
    return out


def write_audio(midi_path: str | Path, render: RenderSettings, say: Callable[[str], None], prefix: str = "improv") -> Path | None:
    """``NAME.wav`` beside ``NAME.mid``; None (and one line saying how to get what is missing) if
    there is no synth or SoundFont."""
    from improv.render.fluidsynth import render_file

    out = Path(midi_path).with_suffix(".wav")
    try:
        done = render_file(midi_path, out, render.soundfont or None, render.sample_rate, render.peak_dbfs)
    except (ImprovError, OSError) as exc:
        say(f"{prefix}: no {out.name}: {exc}")
        return None
    say(f"{prefix}: hear it: {out} ({done.seconds:.0f} s, peak {done.peak_dbfs:.1f} dBFS, {done.soundfont.name})")
    return out
