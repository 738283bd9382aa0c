"""Wrong API keys cost no database query when repeated, on /api and /v1, and a
flood of them leaves the platform answering: 401 for them, 200 for a real key."""

from __future__ import annotations

import asyncio
import secrets
import string
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis.asyncio as aioredis
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from gateway.auth import ApiKeyCache
from tenants import rejected_keys
from tenants.models import ApiKey
from tenants.rejected_keys import RejectedApiKeys, find_usable_api_key_remembering, rejected_api_keys
from tenants.services import create_api_key
from testing.tenants import TenantFixture

KEYS_URL = "/api/v1/keys"
ALPHABET = string.ascii_letters + string.digits


def lookups(queries: CaptureQueriesContext) -> list[str]:
    """The statements run, but for the search path django-tenants sets on a fresh cursor."""
    statements = [query["sql"] for query in queries.captured_queries]
    return [sql for sql in statements if not sql.startswith("SET search_path")]


def random_prefix() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(12))


def bogus_key(prefix: str | None = None) -> str:
    """Well-formed, and nobody's."""
    return f"aiaas_{prefix or random_prefix()}_{secrets.token_urlsafe(32)}"


@pytest.fixture(autouse=True)
def _forget_rejections() -> Iterator[None]:
    rejected_api_keys.clear()
    yield
    rejected_api_keys.clear()


def test_a_repeated_unknown_key_costs_one_query_on_the_api(tenant: TenantFixture) -> None:
    client = tenant.api_client(bogus_key())

    with CaptureQueriesContext(connection) as first:
        assert client.get(KEYS_URL).status_code == 401
    with CaptureQueriesContext(connection) as repeats:
        statuses = [client.get(KEYS_URL).status_code for _ in range(50)]

    assert len(lookups(first)) == 1
    assert statuses == [401] * 50
    assert repeats.captured_queries == []


def test_a_wrong_secret_for_a_real_prefix_is_remembered_and_the_real_key_still_works(
    tenant: TenantFixture,
) -> None:
    prefix = tenant.provisioned.issued_key.api_key.prefix
    client = tenant.api_client(bogus_key(prefix))

    with CaptureQueriesContext(connection) as queries:
        statuses = [client.get(KEYS_URL).status_code for _ in range(20)]

    assert statuses == [401] * 20
    assert len(lookups(queries)) == 1
    assert tenant.api_client().get(KEYS_URL).status_code == 200


def test_a_revoked_key_is_remembered_as_refused(tenant: TenantFixture) -> None:
    issued = create_api_key(tenant.tenant, name="revoked soon", scopes=["admin"])
    ApiKey.objects.filter(pk=issued.api_key.pk).update(revoked_at="2020-01-01T00:00:00Z")
    client = tenant.api_client(issued.secret)

    with CaptureQueriesContext(connection) as queries:
        statuses = [client.get(KEYS_URL).status_code for _ in range(10)]

    assert statuses == [401] * 10
    assert len(lookups(queries)) == 1


def test_a_new_key_works_at_once_even_if_its_prefix_was_remembered_as_unknown(
    tenant: TenantFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = random_prefix()
    assert tenant.api_client(bogus_key(prefix)).get(KEYS_URL).status_code == 401
    secret = secrets.token_urlsafe(32)
    monkeypatch.setattr(
        "tenants.services.generate_api_key_secret", lambda: (prefix, secret, f"aiaas_{prefix}_{secret}")
    )

    issued = create_api_key(tenant.tenant, name="guessed prefix", scopes=["admin"])

    assert issued.api_key.prefix == prefix
    assert tenant.api_client(issued.secret).get(KEYS_URL).status_code == 200


def test_a_key_of_an_inactive_tenant_is_not_remembered(tenant: TenantFixture) -> None:
    tenant.tenant.is_active = False
    tenant.tenant.save(update_fields=["is_active"])
    assert tenant.api_client().get(KEYS_URL).status_code == 401

    tenant.tenant.is_active = True
    tenant.tenant.save(update_fields=["is_active"])

    assert tenant.api_client().get(KEYS_URL).status_code == 200


def test_the_rejections_are_bounded_oldest_first() -> None:
    rejected = RejectedApiKeys(max_entries=3, ttl_seconds=60)
    prefixes = [random_prefix() for _ in range(4)]

    for prefix in prefixes:
        rejected.reject_prefix(prefix)

    assert len(rejected) == 3
    remembered = [rejected.is_rejected(prefix, bogus_key(prefix)) for prefix in prefixes]
    assert remembered == [False, True, True, True]


def test_a_rejection_expires() -> None:
    rejected = RejectedApiKeys(max_entries=10, ttl_seconds=0.05)
    key = bogus_key()
    rejected.reject_key(key)
    assert rejected.is_rejected(key[6:18], key)

    time.sleep(0.06)

    assert not rejected.is_rejected(key[6:18], key)
    assert len(rejected) == 0


class CountingLookup:
    """Stands in for the database lookup: counts calls and how many run at once."""

    def __init__(self) -> None:
        self.calls = 0
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def __call__(self, prefix: str) -> ApiKey | None:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(0.02)
        with self._lock:
            self.running -= 1
        return None


@pytest.fixture
def lookup(monkeypatch: pytest.MonkeyPatch) -> CountingLookup:
    counting = CountingLookup()
    monkeypatch.setattr(rejected_keys, "api_key_with_prefix", counting)
    return counting


def resolve_all(keys: list[str], *, concurrently: bool) -> list[ApiKey | None]:
    async def main() -> list[ApiKey | None]:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        cache = ApiKeyCache(client)
        try:
            if concurrently:
                return list(await asyncio.gather(*(cache.resolve(key) for key in keys)))
            return [await cache.resolve(key) for key in keys]
        finally:
            if cache._listener is not None:
                cache._listener.cancel()
            await client.aclose()

    return asyncio.run(main())


def test_a_repeated_unknown_key_costs_one_lookup_on_v1(lookup: CountingLookup) -> None:
    key = bogus_key()

    assert resolve_all([key] * 100, concurrently=False) == [None] * 100
    assert lookup.calls == 1


def test_v1_runs_at_most_the_configured_lookups_at_once(lookup: CountingLookup) -> None:
    keys = [bogus_key() for _ in range(40)]

    assert resolve_all(keys, concurrently=True) == [None] * 40
    assert lookup.calls == 40
    assert lookup.most_at_once == settings.API_KEY_LOOKUP_CONCURRENCY


def test_a_burst_of_one_unknown_key_on_v1_makes_at_most_one_lookup_per_slot(lookup: CountingLookup) -> None:
    key = bogus_key()

    assert resolve_all([key] * 200, concurrently=True) == [None] * 200
    assert 1 <= lookup.calls <= settings.API_KEY_LOOKUP_CONCURRENCY


async def flood(url: str, key: str, count: int) -> list[int]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        # /api is served on any allowed host; the test server listens on 127.0.0.1.
        headers = {"Authorization": f"Bearer {key}", "Host": settings.BASE_DOMAIN}
        responses = await asyncio.gather(*(http.get(url, headers=headers) for _ in range(count)))
    return [response.status_code for response in responses]


def database_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("path", ["/api/v1/keys", "/v1/models"])
def test_a_flood_of_one_wrong_key_gets_401s_and_a_real_key_still_works(
    platform_url: str, gateway: str, serving_tenant: TenantFixture, path: str
) -> None:
    before = database_connections()

    statuses = asyncio.run(flood(platform_url + path, bogus_key(), 200))

    assert statuses == [401] * 200
    assert database_connections() - before <= settings.API_KEY_LOOKUP_CONCURRENCY
    headers = {"Authorization": f"Bearer {serving_tenant.admin_key}", "Host": settings.BASE_DOMAIN}
    real = httpx.get(platform_url + path, headers=headers, timeout=10)
    assert real.status_code == 200


def test_api_threads_run_at_most_the_configured_lookups_at_once(lookup: CountingLookup) -> None:
    keys = [bogus_key() for _ in range(40)]
    with ThreadPoolExecutor(max_workers=40) as pool:
        found = list(pool.map(find_usable_api_key_remembering, keys))

    assert found == [None] * 40
    assert lookup.calls == 40
    assert lookup.most_at_once == settings.API_KEY_LOOKUP_CONCURRENCY
