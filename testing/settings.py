"""Settings for the test suite: the development profile's, with what every test run changes.

pytest uses this module (pyproject.toml); a single test that needs another value
takes pytest-django's `settings` fixture or `override_settings`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# The tests run on the development profile (aiaas/profiles.py) unless told otherwise.
os.environ.setdefault("AIAAS_PROFILE", "development")

from aiaas.settings import *  # noqa: F403
from aiaas.settings import DATABASES

# One id per test run (and per xdist worker). Processes the tests start (a Celery
# worker, a flusher killed on purpose) inherit it, so they share the run's streams.
TEST_RUN_ID = os.environ.setdefault("AIAAS_TEST_RUN_ID", str(os.getpid())) + os.environ.get(
    "PYTEST_XDIST_WORKER", ""
)

# A database of this run's own, so concurrent runs on one server never drop each other's.
DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{TEST_RUN_ID}"}

# PBKDF2's million rounds are the point in production and only cost in tests.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# This run's queued events, and the tasks it sends without a queue, stay out of a
# development server's streams and queues on the same Redis.
USAGE_STREAM = f"usage:events:test-{TEST_RUN_ID}"
REQUEST_LOG_STREAM = f"request-logs:events:test-{TEST_RUN_ID}"
CELERY_TASK_DEFAULT_QUEUE = f"test-{TEST_RUN_ID}"
# GET /metrics answers only this token's bearer (testing/metrics.py).
METRICS_TOKEN = "metrics-token-for-tests"
# Settlements spooled while Redis is down (gateway/spool.py): this run's own folder.
USAGE_SPOOL_DIR = Path(tempfile.gettempdir()) / f"aiaas-usage-spool-{TEST_RUN_ID}"

# One test process hosts what production spreads over many: the platform and gateway
# servers' threads, Celery worker threads, in-process agent runs, and each test's
# own connections to the default and `analytics` aliases. Production's bound per
# process (20) is tested on its own (aiaas/tests/test_database_connections.py).
DATABASE_CONNECTIONS_PER_PROCESS = 40

# The suite's tenants call /api thousands of times a minute with one key; the
# throttle's own tests set low rates (tenants/tests/test_api_throttling.py).
API_KEY_THROTTLE_RATE = "1000000/min"
API_TENANT_THROTTLE_RATE = "1000000/min"
