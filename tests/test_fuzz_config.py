"""Hostile configuration (issue 14, item 11): YAML alias bombs in `--set` values and config files,
nesting 1,000 deep, non-UTF-8 files, non-text keys, non-finite numbers where finite is meant,
absurd seeds; then a seeded fuzz of random values for every key. Invariant: a ``ConfigError`` of
one short line (the value never echoed whole), or valid settings; no traceback, hang or memory
blow-up."""

from __future__ import annotations

import dataclasses
import random
import subprocess
import sys
import tracemalloc

import pytest
from support.junk import CONFIG_VALUES as VALUES

from improv.errors import ConfigError
from improv.settings.bounded_yaml import MAX_NODES
from improv.settings.load import load_settings
from improv.settings.sections import Settings

BOMB = "[" + ",".join(["&a [1,2,3,4,5,6,7,8,9]"] + [f"&{chr(98 + i)} [*{chr(97 + i)}" + f",*{chr(97 + i)}" * 8 + "]" for i in range(9)]) + "]"


def refused(overrides=None, path=None) -> str:
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as info:
            load_settings(path, overrides)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert "\n" not in message and len(message) < 400, message
    assert peak < 50_000_000, f"{peak / 1e6:.0f} MB to refuse it"
    return message


def test_an_alias_bomb_in_a_set_value_is_refused_without_expanding_it():
    message = refused([f"train.data={BOMB}"])
    assert f"more than {MAX_NODES} values" in message and "alias bomb" in message


def test_an_alias_bomb_in_a_config_file(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(f"train:\n  data: {BOMB}\n")
    assert "alias bomb" in refused(path=path)


@pytest.mark.parametrize("depth", [40, 1000, 5000])


def test_deep_nesting(tmp_path, depth):
    said = refused([f"train.data={'[' * depth}1{']' * depth}"])
    assert "nested" in said or "characters long" in said
    path = tmp_path / "deep.yaml"
    path.write_text("train:\n  data: " + "[" * depth + "1" + "]" * depth + "\n")
    assert "nested" in refused(path=path)


def test_files_that_are_not_utf8_text_or_not_files(tmp_path):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("serve:\n  client_name: caf\xe9\n".encode("latin-1"))
    assert "is not UTF-8 text" in refused(path=latin)
    assert "not a regular file" in refused(path="/dev/zero")
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * 2_000_000 + "\n")
    assert "too big" in refused(path=big)


@pytest.mark.parametrize("text", ["1: {}\n", "serve:\n  1: 2\n", "serve:\n  [a, b]: 1\n", "? [x]\n: 1\n"])


def test_keys_that_are_not_text(tmp_path, text):
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    message = refused(path=path)
    assert "text" in message or "not valid YAML" in message


@pytest.mark.parametrize(
    "override",
    ["corpus.file_timeout_s=.inf", "serve.stuck_note_s=.inf", "demo.breath_beats=.inf", "serve.silence_ms=.nan", "train.lr=.inf", "serve.bpm=-.inf", f"train.lr={10**400}"],
)


def test_numbers_must_be_finite(override):
    assert "expected a finite number" in refused([override])


def test_a_long_value_is_never_echoed_whole():
    assert len(refused(["serve.bpm=" + "9" * 9000])) < 400
    assert len(refused(["serve.api=" + "x" * 9000])) < 400
    assert "characters long" in refused(["serve.api=" + "x" * 20_000])


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "improv", *args], capture_output=True, text=True, timeout=120)


def test_absurd_seeds_and_breaths_through_the_commands(tmp_path):
    from support.models import write_random_model

    tiny = write_random_model(tmp_path / "tiny.npz", load_settings(None, ["model.hidden_size=16", "model.embed_dim=8", "model.num_layers=1"]).model)
    model = ["--checkpoint", str(tiny)]
    runs = [
        ["generate", *model, "--out", str(tmp_path / "g.mid"), "--seed", str(2**70)],  # was accepted by some commands, a traceback in others
        ["demo", *model, "--fast", "--calls", "1", "--set", "demo.breath_beats=.inf"],  # hung
    ]
    for args in runs:
        done = cli(*args)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "error: " in done.stderr.strip().splitlines()[-1] and len(done.stderr) < 1000, done.stderr


@pytest.mark.parametrize("seed", range(3))


def test_fuzz_random_values_for_every_key(seed):
    """3 x 400 random (section, key, value) overrides, as YAML text and as values: valid settings or
    a one-line ConfigError, always."""
    rng = random.Random(seed)
    keys = [(f.name, k.name) for f in dataclasses.fields(Settings) for k in dataclasses.fields(f.type if isinstance(f.type, type) else getattr(Settings(), f.name).__class__)]
    accepted = 0
    for _ in range(400):
        section, key = rng.choice(keys)
        value = rng.choice(VALUES)
        text = value if isinstance(value, str) else repr(value).replace("inf", ".inf").replace("nan", ".nan")
        try:
            load_settings(None, [f"{section}.{key}={text}"])
            accepted += 1
        except ConfigError as exc:
            assert "\n" not in str(exc) and len(str(exc)) < 400, str(exc)
    assert accepted  # some values were valid
