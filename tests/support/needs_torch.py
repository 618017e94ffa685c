"""Which tests need torch, and what a test run says where it is absent.

Playing needs no torch, so README's install line installs none; the tests that train, evaluate or
read a ``.pt`` need it. Those are marked ``torch`` (a module that is all torch uses
``torch_or_skip()`` at its top): without torch they skip, saying why and how to install it,
instead of failing to collect (see conftest.py).
"""

from __future__ import annotations

import importlib.util

import pytest

from improv.errors import TORCH_HINT

HAS_TORCH = importlib.util.find_spec("torch") is not None
REASON = f"needs torch (training, evaluation, .pt checkpoints), which is not installed: {TORCH_HINT}"


def torch_or_skip():
    """``torch``, or the whole calling module skipped with the reason and the install hint."""
    return pytest.importorskip("torch", reason=REASON)
