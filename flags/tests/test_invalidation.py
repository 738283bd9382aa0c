"""A change reaches every process's cached flags within a second (aiaas/control_bus.py)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest
from django.conf import settings
from django.db import connection

from flags import is_enabled
from flags.services import delete_flag, save_flag
from testing.database import committed
from testing.tenants import TenantFixture

# Another process: evaluates the flag (off), then polls it until it is on.
WATCHER = """
import sys, time
from django.conf import settings
settings.DATABASES["default"]["NAME"] = sys.argv[1]
import django
django.setup()
from aiaas import control_bus
from flags import is_enabled
from tenants.models import Tenant
key, tenant = sys.argv[2], Tenant.objects.get(pk=int(sys.argv[3]))
assert not is_enabled(key, tenant)
assert control_bus.wait_until_listening(5)
print("watching", flush=True)
deadline = time.monotonic() + 5
while not is_enabled(key, tenant):
    if time.monotonic() > deadline:
        sys.exit(1)
    time.sleep(0.005)
print("on", flush=True)
"""

# The same, in a child forked after the flags were loaded (Celery's prefork pool):
# it inherits the cached flags and the handler, not the listener thread.
FORKED_WATCHER = WATCHER.replace(
    'print("watching", flush=True)',
    """import os
from django.db import connection
child = os.fork()
if child:
    sys.exit(os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))
connection.close()
assert not is_enabled(key, tenant)
print("watching", flush=True)""",
)


def watch(key: str, tenant: TenantFixture, script: str) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our interpreter, our script
        [sys.executable, "-c", script, connection.settings_dict["NAME"], key, str(tenant.tenant.pk)],
        cwd=settings.BASE_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("script", [WATCHER, FORKED_WATCHER], ids=["process", "forked child"])
def test_a_change_reaches_another_process_within_a_second(serving_tenant: TenantFixture, script: str) -> None:
    key = f"test-invalidation-{uuid.uuid4().hex[:12]}"
    committed(lambda: save_flag(key, enabled_by_default=False, actor="test"))
    watcher = watch(key, serving_tenant, script)
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().strip() == "watching"
        started = time.monotonic()
        committed(lambda: save_flag(key, enabled_by_default=True, actor="test"))
        assert watcher.stdout.readline().strip() == "on"
        assert time.monotonic() - started < 1.0
        assert watcher.wait(timeout=5) == 0
    finally:
        watcher.kill()
        committed(lambda: delete_flag(key, actor="test"))


def test_a_committed_change_applies_in_this_process_at_once(serving_tenant: TenantFixture) -> None:
    key = f"test-invalidation-{uuid.uuid4().hex[:12]}"
    committed(lambda: save_flag(key, enabled_by_default=False, actor="test"))
    try:
        assert is_enabled(key, serving_tenant.tenant) is False

        committed(lambda: save_flag(key, enabled_by_default=True, actor="test"))

        assert is_enabled(key, serving_tenant.tenant) is True
    finally:
        committed(lambda: delete_flag(key, actor="test"))
