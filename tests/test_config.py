"""Config: the committed config.yaml equals the built-in defaults; bad input is a one-line error."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from improv.errors import ConfigError
from improv.settings.load import load_settings, settings_to_dict
from improv.settings.sections import Settings

REPO = Path(__file__).resolve().parent.parent
CONFIG_YAML = REPO / "config.yaml"


def test_config_yaml_holds_every_default():
    on_disk = yaml.safe_load(CONFIG_YAML.read_text())
    assert on_disk == settings_to_dict(Settings())


def test_config_yaml_comments_every_key():
    # Every key line in config.yaml is preceded by a comment line (the "why" of the setting).
    lines = CONFIG_YAML.read_text().splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or not line.startswith("  "):
            continue
        j = i - 1
        while j >= 0 and lines[j].strip() and not lines[j].strip().startswith("#"):
            j -= 1  # keys may be grouped under one comment
        assert j >= 0 and lines[j].strip().startswith("#"), f"config.yaml line {i + 1} has no comment: {line!r}"


def test_load_file_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  hidden_size: 64\nsample:\n  top_k: 5\n")
    s = load_settings(path, ["sample.temperature=0.7", "train.data=[a.mid, b]", "model.cell=gru"])
    assert s.model.hidden_size == 64 and s.model.num_layers == 2
    assert s.sample.top_k == 5 and s.sample.temperature == 0.7
    assert s.train.data == ["a.mid", "b"]
    assert s.model.cell == "gru"


def test_single_value_for_list_is_a_list():
    assert load_settings(None, ["train.data=music21:bach"]).train.data == ["music21:bach"]


def test_int_accepted_for_float():
    assert load_settings(None, ["sample.temperature=1"]).sample.temperature == 1.0


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.hiden_size=3", "unknown config key model.hiden_size (did you mean 'hidden_size'?)"),
        ("modle.hidden_size=3", "unknown config section 'modle' (did you mean 'model'?)"),
        ("model.hidden_size=big", "bad value for model.hidden_size: 'big' (expected a whole number)"),
        ("model.hidden_size=2.5", "bad value for model.hidden_size: 2.5 (expected a whole number)"),
        ("model.cell=rnn", "bad value for model.cell: 'rnn' (choose one of 'lstm', 'gru')"),
        ("model.dropout=1.5", "bad value for model.dropout: 1.5 (must be in [0, 1))"),
        ("sample.temperature=0", "bad value for sample.temperature: 0.0 (must be > 0)"),
        ("model.conditional_heads=maybe", "bad value for model.conditional_heads: 'maybe' (expected true or false)"),
        ("hidden_size=3", "bad override 'hidden_size=3' (expected section.key=value)"),
        ("tokenizer.steps_per_beat=8", "bad value for tokenizer.steps_per_beat: 8 (must be a positive multiple of 12)"),
        ("train.seed=-1", "bad value for train.seed: -1 (must be between 0 and 4294967295 (2**32 - 1))"),  # numpy takes no negative seed
    ],
)
def test_bad_overrides_name_key_and_value(override, message):
    with pytest.raises(ConfigError) as info:
        load_settings(None, [override])
    assert str(info.value) == message
    assert "\n" not in str(info.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_settings(bad)
    flat = tmp_path / "flat.yaml"
    flat.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_settings(flat)
    section = tmp_path / "section.yaml"
    section.write_text("model: 3\n")
    with pytest.raises(ConfigError, match="section 'model' must be a mapping"):
        load_settings(section)


def test_settings_are_frozen():
    s = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.model.hidden_size = 3  # type: ignore[misc]


def test_an_os_error_anywhere_is_one_line(monkeypatch, capsys):
    from improv.cli import info
    from improv.cli import main as cli

    def vanished(args, settings):
        raise FileNotFoundError(2, "No such file or directory", "/gone/model.pt")

    monkeypatch.setattr(info, "run", vanished)
    assert cli.main(["info"]) == 2
    assert capsys.readouterr().err == "improv: error: No such file or directory: /gone/model.pt\n"
