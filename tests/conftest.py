"""Tests marked ``torch`` skip, with the reason and the install hint, where torch is absent
(README's install line installs none: playing runs on numpy)."""

from __future__ import annotations

import pytest
from support.needs_torch import HAS_TORCH, REASON


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAS_TORCH:
        return
    skip = pytest.mark.skip(reason=REASON)
    for item in items:
        if item.get_closest_marker("torch"):
            item.add_marker(skip)
