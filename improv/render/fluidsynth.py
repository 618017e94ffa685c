"""A MIDI file rendered to a WAV file through FluidSynth, the standard SoundFont synthesizer.

Through its command line (``fluidsynth -ni -F``), not the pyfluidsynth bindings: the command
needs no Python dependency and no matching shared library (pyfluidsynth loads libfluidsynth at
import and has no file renderer of its own: it would mean sequencing the MIDI in Python), it is
what the packages of every system install, and it renders faster than real time (see
README.md for the figures measured).

The shell is thin: check the MIDI file (a one-line error for one improv cannot read), find the
synth and a SoundFont, let FluidSynth write headerless 32-bit float samples (nothing clips in
float, whatever the gain), then scale them to ``peak_dbfs`` (``audio.gain_for_peak``) and write 16-bit
WAV atomically, block by block through a memory map.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from improv.errors import ImprovError
from improv.io.files import check_writable, write_atomic
from improv.render.audio import RAW_FORMATS, dbfs, gain_for_peak, peak, raw_samples, write_wav
from improv.render.pianoroll import beside, read_named
from improv.render.soundfont import find_soundfont

GAIN = 0.2  # FluidSynth's own default: its 16-bit output never clips there (the float one never does)
BLOCK_FRAMES = 1 << 18  # frames scaled and written at a time


class NoSynth(ImprovError):
    """FluidSynth is not installed (or not on PATH)."""


class RenderError(ImprovError):
    """FluidSynth ran but gave no audio."""


@dataclass(frozen=True)
class Rendered:
    path: Path
    seconds: float  # of audio written
    peak_dbfs: float  # of the file written
    synth_peak_dbfs: float  # of FluidSynth's output, before the scaling
    soundfont: Path
    elapsed_s: float  # wall time of the whole rendering


def how_to_get_fluidsynth(system: str | None = None) -> str:
    system = sys.platform if system is None else system
    if system.startswith("win"):
        return "install FluidSynth (github.com/FluidSynth/fluidsynth/releases) and put its bin folder on PATH"
    if system == "darwin":
        return "brew install fluid-synth"
    return "sudo apt install fluidsynth fluid-soundfont-gm (Debian/Ubuntu; Fedora: dnf install fluidsynth fluid-soundfont-gm)"


def find_fluidsynth(env: Mapping[str, str] | None = None, system: str | None = None) -> str | None:
    """The ``fluidsynth`` program: on PATH, else where the usual installers put it (a program
    started from a desktop often has a shorter PATH than a terminal)."""
    env = os.environ if env is None else env
    system = sys.platform if system is None else system
    found = shutil.which("fluidsynth", path=env.get("PATH"))
    if found:
        return found
    if system.startswith("win"):
        bases = [env.get(v) for v in ("ProgramFiles", "ProgramFiles(x86)", "LOCALAPPDATA", "ProgramData")]
        places = [Path(b) / sub for b in bases if b for sub in ("FluidSynth/bin", "fluidsynth/bin", "chocolatey/bin")]
        places.append(Path("C:/tools/fluidsynth/bin"))
        names = ["fluidsynth.exe"]
    else:
        places = [Path("/opt/homebrew/bin"), Path("/usr/local/bin"), Path("/usr/bin"), Path("/opt/local/bin")]
        names = ["fluidsynth"]
    for place in places:
        for name in names:
            candidate = place / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return None


def render_file(
    midi_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str] | None = None,
    soundfont: str | None = None,
    rate: int = 44100,
    peak_dbfs: float = -1.0,
) -> Rendered:
    """Render ``midi_path`` to ``out_path`` (WAV, 16-bit stereo at ``rate``), loudest sample at
    ``peak_dbfs``. Checks the MIDI file, the output path, the synth and the SoundFont, in that
    order, each failing in one line before anything is rendered."""
    started = time.perf_counter()
    midi_path = Path(midi_path)
    read_named(midi_path)  # an unreadable file fails here, in improv's words, not FluidSynth's
    out_path = beside(midi_path, out_path, ".wav", "audio")
    check_writable(out_path)
    exe = find_fluidsynth()
    if exe is None:
        raise NoSynth(f"FluidSynth is not installed: {how_to_get_fluidsynth()}")
    font = find_soundfont(soundfont)
    sample_format = _sample_format(exe)
    dtype, _ = RAW_FORMATS[sample_format]
    with tempfile.TemporaryDirectory(prefix="improv-render-") as tmp:
        raw = Path(tmp) / "out.raw"
        # FluidSynth renders until the last notes have died away (their release, the reverb).
        _run(exe, font, midi_path, raw, rate, sample_format)
        size = raw.stat().st_size if raw.exists() else 0
        if size < 2 * dtype.itemsize:
            raise RenderError(f"FluidSynth wrote no audio for {midi_path} (with {font})")
        data = np.memmap(raw, dtype=dtype, mode="r")
        frames = len(data) // 2
        loudest = max(peak(raw_samples(data[i : i + 2 * BLOCK_FRAMES], sample_format)) for i in range(0, 2 * frames, 2 * BLOCK_FRAMES))
        scale = gain_for_peak(loudest, peak_dbfs)
        write_atomic(out_path, functools.partial(write_wav, blocks=_scaled(data, sample_format, scale), rate=rate, channels=2))
        del data  # the map closes before its folder goes (the finished generator has let go of it)
    out_peak = dbfs(loudest * scale) if loudest > 0 else -np.inf
    return Rendered(out_path, frames / rate, out_peak, dbfs(loudest), font, time.perf_counter() - started)


def _scaled(data: np.ndarray, sample_format: str, scale: float) -> Iterator[np.ndarray]:
    for i in range(0, len(data) // 2 * 2, 2 * BLOCK_FRAMES):
        block = raw_samples(data[i : i + 2 * BLOCK_FRAMES], sample_format)
        yield np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0) * scale


def _sample_format(exe: str) -> str:
    """"float" when this FluidSynth writes 32-bit float files (built with libsndfile, as every
    system's package is), else "s16" (the only raw format without it)."""
    try:
        done = subprocess.run([exe, "-O", "help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "s16"
    return "float" if "'float'" in done.stdout + done.stderr else "s16"


def _run(exe: str, font: Path, midi: Path, raw: Path, rate: int, sample_format: str) -> None:
    cmd = [exe, "-n", "-i", "-q", "-g", str(GAIN), "-r", str(rate), "-F", str(raw)]
    if sample_format == "float":
        cmd += ["-T", "raw", "-O", "float", "-E", "little"]
    cmd += [str(font), str(midi)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise NoSynth(f"cannot run {exe}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        raise RenderError(f"FluidSynth failed ({done.returncode}): {lines[-1].strip() if lines else 'no message'}")
