"""The load test (bench/load/locustfile.py) for 60 s, headless, against the test
platform: every class of request is made and passes its thresholds.

Locust runs as a process of its own: it monkey-patches the standard library with
gevent on import, which must not reach this one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from pytest_django import DjangoDbBlocker, Settings

from bench.load.tenant import LOAD_PLAN, prepare
from bench.load.thresholds import MAX_ERROR_RATE, THRESHOLDS
from billing.models import Plan
from tenants.models import Tenant

LOCUSTFILE = Path(django_settings.BASE_DIR) / "bench" / "load" / "locustfile.py"
RUN_SECONDS = 60


@pytest.fixture(scope="module")
def load_credentials(
    django_db_setup: object, django_db_blocker: DjangoDbBlocker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """The load tenant, committed (outside any test's transaction) so the server sees it."""
    slug = f"load-{os.getpid()}"
    with django_db_blocker.unblock():
        credentials = prepare(slug)
    path = tmp_path_factory.mktemp("load") / "credentials.json"
    path.write_text(json.dumps(credentials))
    yield path
    with django_db_blocker.unblock():
        Tenant.objects.get(slug=slug).delete(force_drop=True)
        Plan.objects.filter(slug=LOAD_PLAN).delete()


def test_sixty_seconds_of_mixed_load_pass_the_thresholds(
    platform_url: str, registry: str, load_credentials: Path, tmp_path: Path, settings: Settings
) -> None:
    # The test server speaks plain HTTP: a client keeps no Secure cookie (session, CSRF).
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    report = tmp_path / "report.json"
    result = subprocess.run(  # noqa: S603 - this interpreter, our locustfile
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--users",
            "10",
            "--spawn-rate",
            "5",
            "--run-time",
            f"{RUN_SECONDS}s",
            "--stop-timeout",
            "10",
            "--host",
            platform_url,
            "--only-summary",
            "--loglevel",
            "WARNING",
        ],
        env={**os.environ, "LOAD_CREDENTIALS": str(load_credentials), "LOAD_REPORT": str(report)},
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS + 60,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(report.read_text())
    assert figures["passed"], figures["broken_thresholds"]
    assert set(figures["classes"]) == set(THRESHOLDS)
    assert figures["error_rate"] <= MAX_ERROR_RATE
