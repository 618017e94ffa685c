"""Damaged and hostile files where improv keeps its state (issue 14, items 5, 7, 9, 10), seeded:
bit-flipped checkpoints and weights files, crafted cache entries whose checksum is right but whose
values are not, damaged resume states, a corpus folder with a link loop, a FIFO, a device, an
oversized file and a zip bomb. Invariant: a one-line ``ImprovError`` or a skip with its reason;
never a traceback, a hang, changed weights loaded silently, or a stale temporary file."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import zipfile
from pathlib import Path

import numpy as np
import pytest
from support.midi_mutations import base_midi

from improv.corpus import cache as corpus_cache
from improv.corpus.load import load_corpus
from improv.errors import ImprovError
from improv.music.tokenizer import Tokenizer
from improv.settings.sections import CorpusSettings

TOK = Tokenizer()


def corpus_settings(tmp_path: Path, **changes) -> CorpusSettings:
    return CorpusSettings(cache_dir=str(tmp_path / "cache"), workers=1, **changes)


def midi_folder(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"piece{i}.mid").write_bytes(base_midi(400_000 + 1000 * i))
    return folder


def test_a_corpus_folder_of_things_that_are_not_music_files(tmp_path):
    """A link loop, a FIFO, /dev/zero and a file over corpus.max_file_mb, all named .mid, among
    good files, and a zip bomb of a score: each skipped with its reason, the rest read; nothing
    hangs and no worker eats the machine's memory."""
    folder = midi_folder(tmp_path / "midi")
    (folder / "loop.mid").symlink_to(folder / "loop.mid")
    os.mkfifo(folder / "fifo.mid")
    (folder / "zero.mid").symlink_to("/dev/zero")
    (folder / "big.mid").write_bytes(base_midi() + bytes(1_100_000))
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("META-INF/container.xml", '<container><rootfiles><rootfile full-path="s.xml"/></rootfiles></container>')
        z.writestr("s.xml", b"<score-partwise>" + b" " * 300_000_000 + b"</score-partwise>")
    (folder / "bomb.mxl").write_bytes(bomb.getvalue())
    pieces, report = load_corpus([str(folder)], TOK, corpus_settings(tmp_path, max_file_mb=1.0, worker_memory_mb=64))
    assert len(pieces) == 3
    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    assert reasons["loop.mid"] == "a symbolic link loop"
    assert reasons["fifo.mid"] == "not a regular file (a FIFO)"
    assert reasons["zero.mid"] == "not a regular file (a character device)"
    assert reasons["big.mid"].startswith("too big (1.1 MB; the limit is 1 MB)")
    assert "memory" in reasons["bomb.mxl"].lower(), reasons["bomb.mxl"]  # the worker's allowance (64 MB) stopped it
    assert all("\n" not in r for r in reasons.values())


def reseal(blob: bytes, change) -> bytes:
    """A cache entry with its JSON header changed by ``change`` and the checksum made right again
    (what an attacker who read cache.py could write)."""
    magic = corpus_cache._MAGIC
    at = len(magic)
    size = int.from_bytes(blob[at : at + 4], "little")
    header = json.loads(blob[at + 4 : at + 4 + size])
    payload = bytearray(blob[at + 4 + size :])
    payload = change(header, payload) or payload
    header["digest"] = hashlib.blake2b(bytes(payload), digest_size=16).hexdigest()
    head = json.dumps(header).encode()
    return magic + len(head).to_bytes(4, "little") + head + bytes(payload)


def _crafted(rng: random.Random):
    """Ways to lie in a cache entry with a valid checksum."""

    def header_value(header, payload):
        target = rng.choice(["works", "tokens"])
        if target == "works":
            w = header["works"][0]
            key = rng.choice(["notes", "bpm", "meter", "suffix"])
            w[key] = rng.choice([-1, 0, 10**9, 1e308, float("nan"), "x", [1], None, {"a": 1}, [0, 0]])
        else:
            t = header["tokens"]
            key = rng.choice(["rows", "kept", "total", "recipe"])
            t[key] = rng.choice([[10**9], [-5], [], "x", None, [1, 2, 3], -1, 2.5])

    def payload_value(header, payload):
        i = rng.randrange(len(payload))
        payload[i] = rng.choice([0xFF, 0x80, 0x7F, 0])  # a token or a note byte out of range

    def shape(header, payload):
        return payload[: rng.randrange(len(payload))] if rng.random() < 0.5 else payload + bytes(rng.randrange(1, 64))

    return rng.choice([header_value, payload_value, shape])


def test_fuzz_crafted_cache_entries_are_refused_and_rebuilt(tmp_path):
    """60 crafted entries (values out of range, wrong counts, wrong types, a changed length) with a
    correct checksum: each load gives the same pieces as a fresh parse (a lying entry is parsed
    again), never an exception."""
    folder = midi_folder(tmp_path / "midi", n=1)
    settings = corpus_settings(tmp_path)
    fresh, _ = load_corpus([str(folder)], TOK, settings)
    (entry,) = (tmp_path / "cache").glob("*.corpus")
    good = entry.read_bytes()
    rng = random.Random(3)
    for _ in range(60):
        entry.write_bytes(reseal(good, _crafted(rng)))
        pieces, _ = load_corpus([str(folder)], TOK, settings)
        assert len(pieces) == len(fresh)
        for a, b in zip(pieces, fresh):
            assert np.array_equal(a.tokens, b.tokens) or int(a.tokens.max()) < 256
            assert a.tokens.shape[1] == 4 and (a.tokens[:, 0] <= 129).all()
    assert not list((tmp_path / "cache").glob("*.tmp"))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from improv.model.checkpoint import write_untrained_checkpoint
    from improv.settings.sections import ModelSettings

    path = tmp_path_factory.mktemp("ckpt") / "m.pt"
    write_untrained_checkpoint(path, ModelSettings(embed_dim=8, hidden_size=16, num_layers=1), seed=0)
    return path


@pytest.mark.torch
@pytest.mark.parametrize("kind", ["pt", "npz"])
def test_fuzz_bit_flipped_model_files_never_load_changed_weights(tmp_path, saved, kind):
    """120 copies of a model file with 1-4 bits flipped: each is refused in one line, or loads
    with exactly the original weights (a flip in a part that holds no weight)."""
    from improv.model.voices import load_player

    source = saved if kind == "pt" else saved.with_suffix(".npz")  # written beside it
    original = load_player(source).step_model()
    blob = source.read_bytes()
    rng = random.Random(11)
    refused = loaded = 0
    for _ in range(120):
        damaged = bytearray(blob)
        for _ in range(rng.randrange(1, 5)):
            damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        path = tmp_path / f"d.{kind}"
        path.write_bytes(bytes(damaged))
        try:
            model = load_player(path).step_model()
        except ImprovError as exc:
            assert "\n" not in str(exc)
            refused += 1
            continue
        loaded += 1
        for name, value in vars(original).items():
            if isinstance(value, np.ndarray):
                assert np.array_equal(value, getattr(model, name)), name
    assert refused > 60


@pytest.mark.torch
@pytest.mark.parametrize("lack", ["optimizer", "progress", "world", "ranks"])
def test_a_damaged_resume_state_is_one_line(tmp_path, lack):
    import torch

    from improv.cli.main import main
    from improv.model.checkpoint import load_checkpoint, save_checkpoint
    from improv.training.artefacts import last_path

    data = midi_folder(tmp_path / "midi", n=4)
    out = tmp_path / "m.pt"
    sets = ["--set", "model.hidden_size=8", "--set", "model.embed_dim=4", "--set", "model.num_layers=1", "--set", "train.epochs=1",
            "--set", "train.batch_size=2", "--set", "train.chunk_len=8", "--set", "train.threads=1", "--set", f"corpus.cache_dir={tmp_path / 'c'}"]  # fmt: skip
    assert main(["train", "--data", str(data), "--out", str(out), *sets]) == 0
    last = last_path(out)
    ckpt = load_checkpoint(last)
    assert ckpt.resume is not None
    del ckpt.resume[lack]
    save_checkpoint(last, ckpt)
    code = main(["train", "--data", str(data), "--out", str(out), "--resume", *sets, "--set", "train.epochs=2"])
    assert code == 2
    assert torch.is_tensor(next(iter(load_checkpoint(out).weights.values())))
