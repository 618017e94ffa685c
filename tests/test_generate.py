"""`improv generate`: reproducible files with real rhythm, chords, tempo and instrument; clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.models import write_random_model

from improv.cli.main import main
from improv.generation.compose import (
    DEFAULT_PITCH_RANGE,
    compose,
    fold_notes,
    generation_pitch_mask,
    sample_rows,
)
from improv.model.sampling import SamplingParams
from improv.model.step_model import HEAD_ORDER, random_step_model
from improv.music.midi import Track, midi_bytes, read_midi
from improv.music.notes import Note, fold_pitch, playable
from improv.music.tokenizer import BOS, EOS, OFFSET, PITCH, Tokenizer
from improv.settings.load import load_settings

SMALL = ["model.hidden_size=32", "model.embed_dim=16", "model.num_layers=1"]


@pytest.fixture(scope="module")
def ckpt_path(tmp_path_factory) -> str:
    """A tiny untrained model that likes chords (offset 0) and never ends the piece early."""
    k_offset, k_pitch = HEAD_ORDER.index(OFFSET), HEAD_ORDER.index(PITCH)
    bias = {
        f"head_out.{k_offset}.bias": {0: 3.0},  # offset class 0 = same onset = a chord
        f"head_out.{k_pitch}.bias": {EOS: -20.0},
    }
    return str(write_random_model(tmp_path_factory.mktemp("ckpt") / "tiny.npz", load_settings(None, SMALL).model, seed=1, bias=bias))


@pytest.fixture(scope="module")
def prompt_path(tmp_path_factory) -> str:
    notes = [Note(60 + (i % 5), 0.5 * i, 0.5, 80) for i in range(12)] + [Note(125, 6.0, 1.0, 90), Note(2, 6.0, 1.0, 90)]
    path = tmp_path_factory.mktemp("prompt") / "prompt.mid"
    path.write_bytes(midi_bytes([Track("p", notes)], bpm=87.0))
    return str(path)


def gen(ckpt_path: str, out: Path, *extra: str) -> int:
    return main(["generate", "--checkpoint", ckpt_path, "--out", str(out), *extra])


def test_same_seed_same_bytes_other_seed_other_music(ckpt_path, tmp_path):
    assert gen(ckpt_path, tmp_path / "a.mid", "--seed", "7", "--length", "120") == 0
    assert gen(ckpt_path, tmp_path / "b.mid", "--seed", "7", "--length", "120") == 0
    assert gen(ckpt_path, tmp_path / "c.mid", "--seed", "8", "--length", "120") == 0
    a, b, c = ((tmp_path / n).read_bytes() for n in ("a.mid", "b.mid", "c.mid"))
    assert a == b
    assert a != c


def test_file_reads_back_in_music21_with_rhythm_chords_tempo_and_program(ckpt_path, tmp_path):
    music21 = pytest.importorskip("music21")
    out = tmp_path / "song.mid"
    assert gen(ckpt_path, out, "--seed", "3", "--length", "100", "--bpm", "93", "--program", "40") == 0
    score = music21.converter.parse(str(out))
    elements = list(score.flatten().notes)
    at_onset: dict[float, set[int]] = {}
    for e in elements:
        at_onset.setdefault(float(e.offset), set()).update(p.midi for p in e.pitches)
    chords = [pitches for pitches in at_onset.values() if len(pitches) >= 2]
    assert len(chords) >= 3  # notes sounding together, each at its own pitch (voicing kept)
    assert len({float(e.quarterLength) for e in elements}) >= 4  # several note lengths
    onsets = sorted({float(e.offset) for e in elements})
    assert len({round(b - a, 3) for a, b in zip(onsets, onsets[1:])}) >= 4  # several gaps between onsets
    marks = score.flatten().getElementsByClass(music21.tempo.MetronomeMark)
    assert marks and abs(marks[0].number - 93) < 0.5
    programs = {inst.midiProgram for inst in score.recurse().getElementsByClass(music21.instrument.Instrument)}
    assert 40 in programs
    velocities = {n.volume.velocity for n in score.flatten().notes}
    assert len(velocities) >= 3  # dynamics from the velocity head


def test_musicxml_output(ckpt_path, tmp_path):
    music21 = pytest.importorskip("music21")
    out = tmp_path / "sheet.musicxml"
    assert gen(ckpt_path, out, "--seed", "1", "--length", "40", "--bpm", "120") == 0
    score = music21.converter.parse(str(out))
    assert len(score.flatten().notes) >= 10
    mark = score.flatten().getElementsByClass(music21.tempo.MetronomeMark)[0]
    assert mark.number == 120
    # The same seed writes the same sheet, byte for byte (no random part ids, no date).
    again = tmp_path / "again.musicxml"
    assert gen(ckpt_path, again, "--seed", "1", "--length", "40", "--bpm", "120") == 0
    assert again.read_bytes() == out.read_bytes()


def test_prompt_primes_and_sets_tempo(ckpt_path, prompt_path, tmp_path):
    assert gen(ckpt_path, tmp_path / "free.mid", "--seed", "5", "--length", "60") == 0
    assert gen(ckpt_path, tmp_path / "primed.mid", "--seed", "5", "--length", "60", "--prompt", prompt_path) == 0
    free = read_midi((tmp_path / "free.mid").read_bytes())
    primed = read_midi((tmp_path / "primed.mid").read_bytes())
    assert [n.pitch for n in free.notes] != [n.pitch for n in primed.notes]
    assert primed.bpm == pytest.approx(87.0, abs=0.01)  # the prompt's tempo
    assert free.bpm == pytest.approx(100.0)  # generate.bpm


def test_include_prompt_writes_it_on_its_own_track_before_the_continuation(ckpt_path, prompt_path, tmp_path):
    out = tmp_path / "with.mid"
    assert gen(ckpt_path, out, "--seed", "5", "--length", "30", "--prompt", prompt_path, "--include-prompt") == 0
    import mido

    mid = mido.MidiFile(str(out))
    assert [t.name for t in mid.tracks[1:]] == ["prompt", "improv"]
    notes = read_midi(out.read_bytes()).notes
    prompt_notes = read_midi(Path(prompt_path).read_bytes()).notes
    generated = [n for n in notes if n not in prompt_notes]
    assert generated and min(n.start for n in generated) >= max(n.start for n in prompt_notes) - 1e-9


def test_out_of_range_prompt_notes_are_folded_not_refused():
    model = random_step_model(Tokenizer(), seed=2)
    primed: list[np.ndarray] = []
    original_prime = model.prime
    model.prime = lambda rows, state=None: (primed.append(np.array(rows)), original_prime(rows, state))[1]
    prompt = [Note(127, 0.0, 1.0, 80), Note(0, 1.0, 1.0, 80), Note(60, 2.0, 1.0, 80)]
    comp = compose(model, np.random.default_rng(0), SamplingParams(), 10, prompt)
    pitches = primed[0][1:, PITCH]
    assert primed[0][0, PITCH] == BOS
    lo, hi = DEFAULT_PITCH_RANGE
    assert sorted(pitches.tolist()) == sorted([127 - 24, 0 + 24, 60]) and all(lo <= p <= hi for p in pitches)
    assert len(comp.notes) <= comp.events == 10  # with a prompt: always the full length
    assert [n.pitch for n in fold_notes(prompt, (40, 80))] == [79, 48, 60]


def test_folding_into_a_range_narrower_than_an_octave_is_refused():
    prompt = [Note(66, 0.0, 1.0, 80)]
    with pytest.raises(ValueError, match="at least an octave"):
        fold_notes(prompt, (60, 65))  # no octave of F# lies in 60..65 (it used to come back as 54, outside)
    assert [n.pitch for n in fold_notes(prompt + [Note(40, 1.0, 1.0, 80)], (60, 71))] == [66, 64]
    assert fold_pitch(-1) == 11 and fold_pitch(140) == 128 - 12 and fold_pitch(200, 21, 108) == 104


def test_playable_merges_unisons_and_ends_a_note_when_its_pitch_is_struck_again():
    notes = [Note(60, 0, 2, 70), Note(60, 0, 1, 90), Note(64, 0, 1, 80), Note(60, 1, 1, 80), Note(64, 1, 1, 80)]
    assert playable(notes) == [Note(60, 0, 1, 90), Note(64, 0, 1, 80), Note(60, 1, 1, 80), Note(64, 1, 1, 80)]
    # Written and read back, every note keeps its length (no one-tick leftovers).
    back = read_midi(midi_bytes([Track("t", playable(notes))], 100)).notes
    assert sorted((n.pitch, n.start, n.duration) for n in back) == [(60, 0, 1), (60, 1, 1), (64, 0, 1), (64, 1, 1)]


def test_sampled_rows_hold_notes_only_and_respect_length():
    model = random_step_model(Tokenizer(), seed=4)
    assert not generation_pitch_mask()[BOS] and generation_pitch_mask()[EOS] and not generation_pitch_mask(False)[EOS]
    out = sample_rows(model, np.random.default_rng(1), SamplingParams(), 25)
    assert len(out.rows) <= 25 and (out.rows[:, PITCH] < BOS).all()
    assert (out.rows[:, 2] >= 1).all()  # a note never has duration class 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--temperature", "0"], "--temperature must be > 0"),
        (["--top-p", "2"], "--top-p must be in (0, 1]"),
        (["--top-k", "-1"], "--top-k must be >= 0"),
        (["--length", "0"], "--length must be >= 1"),
        (["--bpm", "1000"], "--bpm must be between 10 and 400"),
        (["--program", "128"], "--program must be a General MIDI program 0-127"),
    ],
)
def test_bad_options_are_one_line_errors(ckpt_path, tmp_path, capsys, args, message):
    assert gen(ckpt_path, tmp_path / "x.mid", *args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("improv: error: ") and message in err and "\n" not in err
    assert not (tmp_path / "x.mid").exists()


def test_missing_checkpoint_says_how_to_get_one(tmp_path, capsys):
    assert main(["generate", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "x.mid")]) == 2
    err = capsys.readouterr().err.strip()
    assert "checkpoint not found" in err and "improv train --out" in err and "improv voices" in err and "\n" not in err


def test_bad_outputs_and_prompts_are_one_line_errors(ckpt_path, tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    junk = tmp_path / "junk.mid"
    junk.write_bytes(b"MThd but not really a MIDI file")
    cases = [
        (["--out", str(blocker / "x.mid")], "is not a folder"),
        (["--out", str(tmp_path / "x.wav")], "must end in .mid"),
        (["--out", str(tmp_path / "x.mid"), "--prompt", str(junk)], "is not a readable MIDI file"),
        (["--out", str(tmp_path / "x.mid"), "--prompt", str(tmp_path / "nope.mid")], "cannot read prompt"),
    ]
    for args, message in cases:
        assert main(["generate", "--checkpoint", ckpt_path, *args]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err


def test_output_folder_is_created(ckpt_path, tmp_path):
    out = tmp_path / "new" / "folder" / "x.mid"
    assert gen(ckpt_path, out, "--seed", "0", "--length", "5") == 0
    assert out.read_bytes()[:4] == b"MThd"


def test_the_length_asked_for_unless_the_model_may_end_sooner(tmp_path, capsys):
    # A model that wants to end the piece at once: --length is what you get by default;
    # --min-length lets it end the piece after that many events (0: whenever it likes).
    eager = write_random_model(tmp_path / "eager.npz", load_settings(None, SMALL).model, seed=2, bias={f"head_out.{HEAD_ORDER.index(PITCH)}.bias": {EOS: 12.0}})

    def events(*extra: str) -> str:
        assert main(["generate", "--checkpoint", str(eager), "--out", str(tmp_path / "e.mid"), "--seed", "1", "--length", "60", *extra]) == 0
        return capsys.readouterr().out

    assert "60 events (length reached)" in events()
    assert "60 events (length reached)" in events("--min-length", "-1")
    ended = events("--min-length", "0")
    assert "(the model ended the piece)" in ended and "60 events" not in ended
    assert "12 events (the model ended the piece)" in events("--min-length", "12")
    assert main(["generate", "--checkpoint", str(eager), "--out", str(tmp_path / "e.mid"), "--min-length", "-2"]) == 2
    assert "--min-length must be >= 0, or -1 for the whole --length (got -2)" in capsys.readouterr().err
