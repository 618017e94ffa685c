"""Hear it: loudness normalisation (pure), the SoundFont search on every system, the FluidSynth
shell (with a stand-in synth, and the real one where it is installed), and `improv render`'s
one-line errors."""

from __future__ import annotations

import math
import os
import stat
import wave
from pathlib import Path

import numpy as np
import pytest

from improv.cli.main import main
from improv.music.midi import Track, midi_bytes
from improv.music.notes import Note
from improv.render import fluidsynth as synth
from improv.render.audio import dbfs, gain_for_peak, normalise, peak, raw_samples, to_pcm16, write_wav
from improv.render.soundfont import NoSoundFont, find_soundfont, soundfont_places


def wav_samples(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, w.getnchannels())
        return data / 32768.0, w.getframerate()


def tune(seconds: float = 2.0) -> bytes:
    notes = [Note(60 + 2 * i, i * 0.5, 0.5, 90) for i in range(int(seconds * 2))]
    return midi_bytes([Track("a", notes, program=0, channel=0), Track("b", [Note(48, 0, 1.0, 70)], program=11, channel=1)], bpm=120)


# ---- the pure core ---------------------------------------------------------------------------


def test_normalise_brings_the_peak_to_the_target_up_or_down():
    quiet = np.array([[0.01, -0.05], [0.02, 0.0]])
    loud = np.array([[3.0, -1.5], [0.2, 0.1]])  # a float synth's output may exceed full scale
    for samples in (quiet, loud):
        out = normalise(samples, -1.0)
        assert dbfs(peak(out)) == pytest.approx(-1.0, abs=1e-4)
        assert np.max(np.abs(out)) < 1.0  # never clips
        # the shape of the sound is kept: one factor for every sample
        assert np.allclose(out / out.flat[np.argmax(np.abs(out))], samples / samples.flat[np.argmax(np.abs(samples))])


def test_normalise_keeps_silence_silent_and_turns_nan_into_silence():
    assert not normalise(np.zeros((100, 2))).any()
    out = normalise(np.array([[np.nan, 0.5], [np.inf, -0.25]]))
    assert np.isfinite(out).all() and dbfs(peak(out)) == pytest.approx(-1.0, abs=1e-4)
    assert gain_for_peak(0.0) == 1.0
    with pytest.raises(ValueError):
        normalise(np.ones(4), peak_dbfs=0.5)


def test_pcm16_dither_is_small_seeded_and_never_wraps():
    x = np.linspace(-0.891, 0.891, 10_000)[:, None]
    a, b = to_pcm16(x, seed=1), to_pcm16(x, seed=1)
    assert (a == b).all() and not (a == to_pcm16(x, seed=2)).all()
    assert np.max(np.abs(a / 32767 - x[:, 0:1])) <= 2 / 32767  # at most a step of dither plus rounding
    full = to_pcm16(np.array([[1.0], [-1.0], [1.2]]))
    assert full.min() >= -32768 and full.max() == 32767  # clipped, not wrapped round


def test_write_wav_in_blocks_reads_back_at_its_level(tmp_path):
    blocks = [normalise(np.sin(np.linspace(0, 200, 4410 * 2)).reshape(-1, 2) * 0.1)] * 3
    path = tmp_path / "x.wav"
    with open(path, "wb") as f:
        assert write_wav(f, blocks, 22050, 2) == 3 * 4410
    samples, rate = wav_samples(path)
    assert rate == 22050 and samples.shape == (3 * 4410, 2)
    assert dbfs(peak(samples)) == pytest.approx(-1.0, abs=0.05)


def test_raw_samples_float_and_s16():
    floats = np.array([0.5, -0.5, 0.25, 1.5, 0.1], dtype="<f4")  # a partial frame at the end is dropped
    assert raw_samples(floats, "float").tolist() == [[0.5, -0.5], [0.25, 1.5]]
    ints = np.array([16384, -32768], dtype="<i2")
    assert raw_samples(ints, "s16").tolist() == [[0.5, -1.0]]


# ---- finding a SoundFont ---------------------------------------------------------------------


def test_soundfont_places_of_each_system():
    home = Path("/home/u")
    linux = soundfont_places("linux", {}, home)
    assert linux.index(Path("/usr/share/sounds/sf2")) < linux.index(Path("/usr/share/soundfonts"))
    assert home / ".local/share/soundfonts" in linux and Path("/usr/share/sounds/sf3") in linux
    assert Path("/tmp/x/soundfonts") in soundfont_places("linux", {"XDG_DATA_HOME": "/tmp/x"}, home)
    mac = soundfont_places("darwin", {}, home)
    assert mac[0] == home / "Library/Audio/Sounds/Banks" and Path("/opt/homebrew/share/soundfonts") in mac
    win = soundfont_places("win32", {"USERPROFILE": "C:/Users/u", "ProgramFiles": "C:/Program Files"}, Path("C:/Users/u"))
    assert Path("C:/soundfonts") in win and Path("C:/Users/u/SoundFonts") in win
    assert len({str(p).lower() for p in win}) == len(win)  # each place once (Windows names ignore case)


def test_find_soundfont_prefers_what_is_given_then_the_environment_then_general_midi_names(tmp_path):
    home = tmp_path / "home"
    banks = home / ".local/share/soundfonts"
    banks.mkdir(parents=True)
    for name in ("aaa-strings.sf2", "FluidR3_GM.sf2", "notes.txt"):
        (banks / name).write_bytes(b"RIFF")
    env = {"HOME": str(home)}
    assert find_soundfont(None, env, "linux", home).name == "FluidR3_GM.sf2"
    (banks / "default-GM.sf2").write_bytes(b"RIFF")
    assert find_soundfont(None, env, "linux", home).name == "default-GM.sf2"
    mine = tmp_path / "mine.sf3"
    mine.write_bytes(b"RIFF")
    assert find_soundfont(None, {**env, "IMPROV_SOUNDFONT": str(mine)}, "linux", home) == mine
    assert find_soundfont(str(mine), {**env, "IMPROV_SOUNDFONT": "/nope.sf2"}, "linux", home) == mine
    with pytest.raises(NoSoundFont, match="SoundFont not found: /nope.sf2"):
        find_soundfont("/nope.sf2", env, "linux", home)
    with pytest.raises(NoSoundFont, match=r"\$IMPROV_SOUNDFONT names no file"):
        find_soundfont(None, {"IMPROV_SOUNDFONT": "/nope.sf2"}, "linux", home)


def test_no_soundfont_says_how_to_get_one_on_each_system(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for system, hint in (("darwin", "Library/Audio/Sounds/Banks"), ("win32", r"C:\soundfonts\default.sf2")):
        with pytest.raises(NoSoundFont) as err:
            find_soundfont(None, {}, system, empty)
        assert hint in str(err.value) and "\n" not in str(err.value)
    if not any(p.is_dir() and any(p.glob("*.sf[23]")) for p in soundfont_places("linux", {}, empty)):
        with pytest.raises(NoSoundFont, match="apt install fluid-soundfont-gm"):
            find_soundfont(None, {}, "linux", empty)


# ---- the FluidSynth shell, with a stand-in synth ----------------------------------------------


def fake_fluidsynth(folder: Path, level: float = 0.05, fail: bool = False) -> Path:
    """A `fluidsynth` that writes one second of a float sine at ``level`` to its -F file, and
    records its arguments."""
    script = folder / "fluidsynth"
    body = f"""#!/usr/bin/env python3
import sys, math, struct
args = sys.argv[1:]
open({str(folder / 'args.txt')!r}, 'w').write(' '.join(args))
if args[:2] == ['-O', 'help']:
    print("-O options (audio file format):\\n   'double','float','s16'"); sys.exit(0)
if {fail!r}:
    print('fluidsynth: error: something broke', file=sys.stderr); sys.exit(3)
out = args[args.index('-F') + 1]
rate = int(args[args.index('-r') + 1])
with open(out, 'wb') as f:
    for i in range(rate):
        v = {level} * math.sin(i / 10)
        f.write(struct.pack('<ff', v, -v))
"""
    script.write_text(body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_render_file_runs_the_synth_in_float_and_normalises(tmp_path, monkeypatch):
    fake = fake_fluidsynth(tmp_path)
    monkeypatch.setattr(synth, "find_fluidsynth", lambda: str(fake))
    font = tmp_path / "gm.sf2"
    font.write_bytes(b"RIFF")
    midi = tmp_path / "a.mid"
    midi.write_bytes(tune())
    done = synth.render_file(midi, tmp_path / "a.wav", str(font), rate=8000, peak_dbfs=-1.0)
    args = (tmp_path / "args.txt").read_text().split()
    assert args[args.index("-g") + 1] == "0.2" and ["-T", "raw", "-O", "float", "-E", "little"] == args[args.index("-T") : args.index("-T") + 6]
    assert args[-2] == str(font)
    samples, rate = wav_samples(tmp_path / "a.wav")
    assert rate == 8000 and samples.shape == (8000, 2)
    assert dbfs(peak(samples)) == pytest.approx(-1.0, abs=0.05) and done.peak_dbfs == pytest.approx(-1.0, abs=1e-6)
    assert done.synth_peak_dbfs == pytest.approx(20 * math.log10(0.05), abs=0.05)
    assert done.seconds == pytest.approx(1.0) and done.soundfont == font


def test_render_errors_are_one_line_each(tmp_path, monkeypatch, capsys):
    midi = tmp_path / "a.mid"
    midi.write_bytes(tune())
    font = tmp_path / "gm.sf2"
    font.write_bytes(b"RIFF")
    monkeypatch.setattr(synth, "find_fluidsynth", lambda: None)
    assert main(["render", str(midi), "--soundfont", str(font)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "FluidSynth is not installed" in err and not (tmp_path / "a.wav").exists()
    monkeypatch.setattr(synth, "find_fluidsynth", lambda: str(fake_fluidsynth(tmp_path, fail=True)))
    assert main(["render", str(midi), "--soundfont", str(font)]) == 2
    assert "FluidSynth failed (3): fluidsynth: error: something broke" in capsys.readouterr().err
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi at all")
    assert main(["render", str(bad)]) == 2
    assert capsys.readouterr().err == f"improv: error: {bad}: not a MIDI file (it does not start with an MThd header)\n"
    assert main(["render", str(midi), "--soundfont", str(tmp_path / "none.sf2")]) == 2
    assert "SoundFont not found" in capsys.readouterr().err
    assert main(["render", str(midi), "--out", str(midi)]) == 2
    assert "would overwrite its MIDI file" in capsys.readouterr().err
    assert main(["render", "/"]) == 2  # no name to put .wav on: was a ValueError traceback
    assert capsys.readouterr().err == "improv: error: cannot read /: Is a directory\n"


# ---- the real FluidSynth, where it is installed ------------------------------------------------


def real_synth_or_skip() -> Path:
    if synth.find_fluidsynth() is None:
        pytest.skip("FluidSynth is not installed (apt-get install fluidsynth)")
    try:
        return find_soundfont()
    except NoSoundFont:
        pytest.skip("no General MIDI SoundFont here (apt-get install fluid-soundfont-gm)")


def test_real_render_is_loud_unclipped_and_as_long_as_the_music(tmp_path, capsys):
    real_synth_or_skip()
    midi = tmp_path / "tune.mid"
    midi.write_bytes(tune(3.0))
    assert main(["render", str(midi)]) == 0
    line = capsys.readouterr().out
    assert line.startswith(f"improv: rendered {tmp_path / 'tune.wav'} (") and "peak -1.0 dBFS" in line
    samples, rate = wav_samples(tmp_path / "tune.wav")
    assert rate == 44100
    assert -1.5 <= dbfs(peak(samples)) <= -0.9  # within 3 dB of full scale, as the issue asks; no clipping
    assert np.sum(np.abs(samples) >= 32767 / 32768) == 0
    assert 1.5 <= len(samples) / rate <= 1.5 + 4  # the notes (1.5 s), then their release and the reverb
    assert dbfs(peak(samples[: rate // 2])) > -20  # sound from the start, not silence
    assert os.path.getsize(tmp_path / "tune.wav") > 44 + len(samples) * 4 - 8
