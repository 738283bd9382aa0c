"""Each Redis role (docs/scale.md) reaches the server its setting names: five servers,
one per role plus REDIS_URL, and a child process configured with all five."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import redis

from testing.redis_servers import redis_server

ROLES = ("default", "broker", "cache", "limits", "streams")
CHILD = """
import asyncio, sys, django
django.setup()
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from aiaas.celery import app
from aiaas.redis_clients import sync_client
cache.set("role-probe", 1)
app.send_task("role.probe", queue="role-probe")
app.backend.store_result("role-probe", 1, "SUCCESS")
for name in settings.REDIS_POOLS:
    sync_client(name).set(f"role-probe:{name}", 1)
async def subscribe_and_wait():
    layer = get_channel_layer()
    await layer.group_add("role-probe", await layer.new_channel())
    print("written", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
asyncio.run(subscribe_and_wait())
"""


def probe_keys(url: str) -> set[str]:
    with redis.Redis.from_url(url) as client:
        keys = {key.decode() for key in client.scan_iter(match="*role-probe*")}
        channels = {channel.decode() for channel in client.pubsub_channels("*role-probe*")}
    return keys | {f"subscribed:{channel}" for channel in channels}


def test_each_role_lands_on_the_server_its_setting_names(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        urls = {role: stack.enter_context(redis_server(tmp_path / role)) for role in ROLES}
        environ = {f"REDIS_{role.upper()}_URL": url for role, url in urls.items() if role != "default"}
        environ |= {"REDIS_URL": urls["default"], "DJANGO_SETTINGS_MODULE": "testing.settings"}
        child = subprocess.Popen(  # noqa: S603 (our own interpreter and script)
            [sys.executable, "-c", CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **environ},
        )
        assert child.stdout is not None
        assert child.stdin is not None
        assert child.stdout.readline().strip() == "written"
        found = {role: probe_keys(url) for role, url in urls.items()}
        child.stdin.close()
        assert child.wait(timeout=10) == 0

    assert found["default"] == {"role-probe:default"}
    assert found["broker"] == {
        "role-probe",
        "celery-task-meta-role-probe",
        "_kombu.binding.role-probe",
        "_kombu.binding_permanent.role-probe",
    }
    assert found["cache"] == {"public:cache:1:role-probe"}
    assert found["limits"] == {"role-probe:control", "role-probe:queues", "role-probe:gateway"}
    assert found["streams"] == {"role-probe:realtime", "subscribed:asgi__group__role-probe"}
