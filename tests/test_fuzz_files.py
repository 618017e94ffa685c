"""Broken files through every reader improv has, seeded and bounded (issue 14, items 5-8): mutated
MIDI files (byte flips, truncation, absurd tempi and delta times, running status abuse, bad chunk
lengths and divisions) through the corpus's reader and `generate --prompt`, which read with one
set of rules; files that are not files; writes that must not follow a symlink. Invariant: a bad
file is a one-line reason (``MIDIConversionError``, a corpus skip, a ``GenerateError``), never
another exception, a hang, or a file written through a link."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
from support.midi_mutations import base_midi, header, mutations, notes_track, tempo_event, track

from improv.corpus.pool import Limits, parse_task
from improv.errors import ImprovError, MIDIConversionError
from improv.generation.generate import GenerateError, GenerateOptions, generate_file, read_prompt
from improv.model.sampling import SamplingParams
from improv.music.midi import MAX_BEATS, read_midi
from improv.music.tokenizer import Tokenizer

LIMITS = Limits(cpu_s=30.0, file_bytes=32_000_000, memory_bytes=0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    from support.models import write_random_model

    from improv.settings.load import load_settings

    path = write_random_model(tmp_path_factory.mktemp("tiny") / "tiny.npz", load_settings(None, ["model.hidden_size=16", "model.embed_dim=8", "model.num_layers=1"]).model, seed=0)
    return str(path)


@pytest.mark.parametrize("seed", range(3))
def test_fuzz_mutated_midi_through_the_corpus_reader(tmp_path, seed):
    """3 x 300 mutated files through the parser worker's own function (read within the limits,
    then read and tokenised): each gives notes or a skip with its reason."""
    tokenizer = Tokenizer()
    path = tmp_path / "x.mid"
    read, skipped = 0, 0
    for kind, data in mutations(random.Random(seed), 300):
        path.write_bytes(data)
        _, result = parse_task(str(path), "midi", tokenizer, True, LIMITS)
        assert result.skip is None or not result.skip.startswith("reader failed"), (kind, result.skip)
        if result.skip is None:
            read += 1
            assert result.tokens is not None and all(len(rows) >= 2 for rows in result.tokens.rows)
        else:
            skipped += 1
        try:
            read_midi(data)
        except MIDIConversionError:
            pass
    assert read and skipped  # both kinds of outcome were tried


@pytest.mark.parametrize("seed", range(2))
def test_fuzz_mutated_prompts_are_read_with_the_corpus_rules(tmp_path, seed):
    """The same mutations as prompts: notes, or a one-line GenerateError, exactly where the corpus
    reads notes or skips."""
    tokenizer = Tokenizer()
    path = tmp_path / "p.mid"
    for kind, data in mutations(random.Random(100 + seed), 300):
        path.write_bytes(data)
        _, result = parse_task(str(path), "midi", tokenizer, False, LIMITS)
        try:
            notes, bpm = read_prompt(str(path))
        except GenerateError as exc:
            assert result.skip is not None, (kind, str(exc))
            assert "\n" not in str(exc)
        else:
            assert result.skip is None and notes and 0 < bpm, kind


def test_fuzz_generate_from_mutated_prompts_end_to_end(tmp_path, tiny):
    """54 whole `generate` runs on mutated prompts (with and without --include-prompt): a file
    written, or an ImprovError; never another exception or a hang."""
    rng = random.Random(7)
    prompt = tmp_path / "p.mid"
    written = 0
    for kind, data in mutations(random.Random(8), 54):
        prompt.write_bytes(data)
        out = tmp_path / "o.mid"
        opts = GenerateOptions(tiny, str(out), 12, SamplingParams(), 0, None, 120.0, 0, prompt=str(prompt), include_prompt=rng.random() < 0.5)
        try:
            generate_file(opts)
        except ImprovError:
            continue
        written += 1
        read_midi(out.read_bytes())  # what it wrote reads back
    assert written


def test_tempo_zero_and_absurd_delta_times_in_a_prompt(tmp_path, tiny):
    """The two prompts that crashed `generate` (issue 14, item 6): tempo 0 (ZeroDivisionError) is
    no tempo at all; delta times that put notes past MAX_BEATS are a one-line error, and
    --include-prompt cannot make MusicXML lay out a hundred thousand bars."""
    zero = tmp_path / "zero.mid"
    zero.write_bytes(header() + track(tempo_event(0) + b"\x00\xff\x2f\x00") + notes_track())
    notes, bpm = read_prompt(str(zero))
    assert len(notes) == 5 and bpm == 120.0
    far = tmp_path / "far.mid"
    far.write_bytes(header() + track(tempo_event(500_000) + b"\x00\xff\x2f\x00") + notes_track(step=0x0FFFFFFF))
    with pytest.raises(GenerateError, match=f"past {MAX_BEATS} \\(absurd delta times\\)"):
        read_prompt(str(far))
    for prompt in (zero, far):
        done = subprocess.run(
            [sys.executable, "-m", "improv", "generate", "--checkpoint", tiny, "--prompt", str(prompt), "--include-prompt", "--out", str(tmp_path / "o.musicxml"), "--length", "8", "--seed", "1"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert "Traceback" not in done.stderr, done.stderr
        assert done.returncode == (0 if prompt is zero else 2), done.stderr
        assert len(done.stderr.strip().splitlines()) <= 1


def test_a_prompt_that_is_not_a_file_is_one_line_never_a_hang(tmp_path):
    fifo = tmp_path / "fifo.mid"
    os.mkfifo(fifo)
    with pytest.raises(GenerateError, match="not a regular file \\(a FIFO\\)"):
        read_prompt(str(fifo))
    zero = tmp_path / "zero.mid"
    zero.symlink_to("/dev/zero")
    with pytest.raises(GenerateError, match="not a regular file \\(a character device\\)"):
        read_prompt(str(zero))
    loop = tmp_path / "loop.mid"
    loop.symlink_to(loop)
    with pytest.raises(GenerateError, match="symbolic link loop"):
        read_prompt(str(loop))
    big = tmp_path / "big.mid"
    big.write_bytes(base_midi() + bytes(2_000_000))
    with pytest.raises(GenerateError, match="too big"):
        read_prompt(str(big), max_file_mb=1)


def test_generate_out_replaces_a_symlink_never_writes_through_it(tmp_path, tiny):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for name in ("song.mid", "song.musicxml"):
        link = tmp_path / name
        link.symlink_to(victim)
        generate_file(GenerateOptions(tiny, str(link), 8, SamplingParams(), 0, None, 120.0, 0))
        assert victim.read_text() == "precious"
        assert not link.is_symlink() and link.stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.mid", "song.musicxml", "victim.txt"]  # no stale .tmp
