"""Audio samples, pure: a rendering's peak level, its loudness normalisation, and 16-bit WAV.

Samples are float arrays of shape (frames, channels), full scale = 1.0. A synthesizer's output at
a safe gain is quiet (FluidSynth's default gain left the demo at -24.6 dBFS) and its loudest moment
depends on the music, so a rendering is scaled afterwards to a fixed peak: as loud as it can be
without clipping, the same for every file. The WAV written is 16-bit PCM (what every player
reads), through the standard library's ``wave``, block by block (an hour of audio is never in
memory at once).
"""

from __future__ import annotations

import math
import wave
from typing import IO, Iterable

import numpy as np

PCM16_FULL_SCALE = 32767
# Headerless samples as ``fluidsynth -T raw`` writes them: dtype, and the value of full scale.
RAW_FORMATS = {"float": (np.dtype("<f4"), 1.0), "s16": (np.dtype("<i2"), 32768.0)}


def peak(samples: np.ndarray) -> float:
    """The largest absolute sample (0 for silence or no samples; NaN and inf count as silence)."""
    data = np.abs(np.asarray(samples, dtype=np.float64))
    data = data[np.isfinite(data)]
    return float(data.max()) if data.size else 0.0


def dbfs(level: float) -> float:
    """A linear level in dB relative to full scale (-inf for 0)."""
    return 20 * math.log10(level) if level > 0 else -math.inf


def gain_for_peak(level: float, peak_dbfs: float = -1.0) -> float:
    """The factor that brings a rendering whose peak is ``level`` to ``peak_dbfs`` (1 for silence)."""
    if peak_dbfs > 0:
        raise ValueError(f"a peak above full scale would clip: {peak_dbfs} dBFS")
    return 10 ** (peak_dbfs / 20) / level if level > 0 else 1.0


def normalise(samples: np.ndarray, peak_dbfs: float = -1.0) -> np.ndarray:
    """``samples`` scaled (up or down) so that the loudest is at ``peak_dbfs``; silence stays silence
    (and a NaN or inf, which no synth should give, becomes silence rather than noise)."""
    data = np.nan_to_num(np.asarray(samples, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return (data * gain_for_peak(peak(data), peak_dbfs)).astype(np.float32)


def to_pcm16(samples: np.ndarray, seed: int = 0) -> np.ndarray:
    """Float samples -> 16-bit integers, with triangular dither of one step (quiet passages fade into
    noise instead of distortion); clipped at full scale as a last guard. Seeded: the same samples
    give the same file."""
    rng = np.random.default_rng(seed)
    data = np.nan_to_num(np.asarray(samples, dtype=np.float64), nan=0.0, posinf=1.0, neginf=-1.0) * PCM16_FULL_SCALE
    data += rng.random(data.shape) - rng.random(data.shape)
    return np.clip(np.round(data), -PCM16_FULL_SCALE - 1, PCM16_FULL_SCALE).astype("<i2")


def write_wav(handle: IO[bytes], blocks: Iterable[np.ndarray], rate: int, channels: int) -> int:
    """Write float ``blocks`` (frames, channels) to ``handle`` as a 16-bit PCM WAV file; the frames
    written. Each block is dithered with its own seed (its index): the file is reproducible."""
    frames = 0
    with wave.open(handle, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        for i, block in enumerate(blocks):
            out.writeframes(to_pcm16(block, seed=i).tobytes())
            frames += len(block)
    return frames


def raw_samples(data: np.ndarray, sample_format: str, channels: int = 2) -> np.ndarray:
    """Headerless samples (``np.frombuffer``/``np.memmap`` of ``RAW_FORMATS[sample_format][0]``) ->
    (frames, channels) floats at full scale 1.0; a trailing partial frame is dropped."""
    _, full_scale = RAW_FORMATS[sample_format]
    frames = len(data) // channels
    return np.asarray(data[: frames * channels], dtype=np.float64).reshape(frames, channels) / full_scale
