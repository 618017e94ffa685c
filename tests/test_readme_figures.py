"""README's figures and benchmarks/readme_figures.py, which reruns them, stay in step: every figure
the script checks is quoted in README.md as the script has it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_checked_figure_is_quoted_in_the_readme():
    spec = importlib.util.spec_from_file_location("readme_figures", ROOT / "benchmarks" / "readme_figures.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["readme_figures"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    readme = (ROOT / "README.md").read_text()
    missing = [f"{f.group}: {f.readme!r}" for f in module.FIGURES if f.readme not in readme]
    assert not missing, missing
    assert set(module.CHEAP) <= {f.group for f in module.FIGURES}
