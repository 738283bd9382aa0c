"""Test helpers stay out of what production runs: no production module imports
`testing`, and the image's build context leaves the test-only code out."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
# Test-only code: helpers, app tests, benchmarks and the pytest root configuration.
TEST_ONLY_DIRECTORIES = frozenset({"tests", "testing", "bench"})
TEST_ONLY_FILES = frozenset({"conftest.py"})


def production_modules(directory: Path) -> Iterator[Path]:
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.is_symlink():
            continue
        if path.is_dir() and path.name not in TEST_ONLY_DIRECTORIES:
            yield from production_modules(path)
        elif path.suffix == ".py" and path.name not in TEST_ONLY_FILES:
            yield path


def imported_modules(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def imports_testing(path: Path) -> bool:
    return any(name == "testing" or name.startswith("testing.") for name in imported_modules(path))


def test_no_production_module_imports_the_test_helpers() -> None:
    modules = list(production_modules(ROOT))

    assert ROOT / "aiaas" / "settings.py" in modules  # the walk reaches the code
    assert [str(path.relative_to(ROOT)) for path in modules if imports_testing(path)] == []


def test_the_image_leaves_the_test_only_code_out() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}

    assert {"testing", "bench", "conftest.py", "**/tests"} <= ignored
