"""pytest collects only `testpaths`: an app whose tests are missing from it is silently
never tested (the batches app's were, for a session)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_app_with_tests_is_collected() -> None:
    testpaths = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["testpaths"]
    )
    apps_with_tests = {
        path.parent.name for path in ROOT.glob("*/tests") if (path.parent / "__init__.py").exists()
    }
    assert apps_with_tests - testpaths == set()
