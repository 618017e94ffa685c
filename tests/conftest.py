"""Every test gets its own user config folder: `improv serve` keeps MIDI-learned bindings and the
knobs' last values there (serve.controls_file), and one test's knobs must not reach the next."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_config_folder(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
