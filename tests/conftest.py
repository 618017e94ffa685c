"""Tests marked ``torch`` skip, with the reason and the install hint, where torch is absent
(README's install line installs none: playing runs on numpy). Every test gets its own user config
folder: `improv serve` keeps MIDI-learned bindings and the knobs' last values there
(serve.controls_file), and one test's knobs must not reach the next."""

from __future__ import annotations

import pytest
from support.browser import running_browser
from support.needs_torch import HAS_TORCH, REASON


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAS_TORCH:
        return
    skip = pytest.mark.skip(reason=REASON)
    for item in items:
        if item.get_closest_marker("torch"):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _private_config_folder(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))


@pytest.fixture
def browser():
    """A headless Chromium (the monitor page's tests); skipped, saying why, where none starts."""
    yield from running_browser()
