"""Idempotency-Key on POST /api/v1/keys: one key per Idempotency-Key, scoped to
the tenant and the calling API key, with the secret sealed in Redis."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
import redis
from django.conf import settings
from rest_framework.test import APIClient

from aiaas.idempotency import redis_key
from tenants.models import ApiKey, ApiKeyScope
from tenants.selectors import find_usable_api_key
from tenants.services import create_api_key
from testing.tenants import TenantFixture

KEYS_URL = "/api/v1/keys"


@pytest.fixture
def new_key(tenant: TenantFixture, other_tenant: TenantFixture) -> Iterator[Callable[[], str]]:
    """Fresh Idempotency-Keys whose records are removed after the test (the
    database rolls back, Redis does not)."""
    used: list[str] = []

    def make() -> str:
        used.append(f"test-{uuid.uuid4()}")
        return used[-1]

    yield make
    client = redis.Redis.from_url(settings.REDIS_URL)
    with client:
        for key in used:
            client.delete(*(redis_key(fixture.tenant.pk, key) for fixture in (tenant, other_tenant)))


def post_key(client: APIClient, idempotency_key: str | None, name: str = "ci", **fields: object) -> Any:
    headers: dict[str, Any] = {} if idempotency_key is None else {"HTTP_IDEMPOTENCY_KEY": idempotency_key}
    return client.post(KEYS_URL, {"name": name, "scopes": ["inference"], **fields}, format="json", **headers)


def test_a_retry_with_the_same_key_creates_one_key_and_returns_its_secret_again(
    api_client: APIClient, tenant: TenantFixture, new_key: Callable[[], str]
) -> None:
    key, name = new_key(), f"retried-{uuid.uuid4().hex[:8]}"

    first = post_key(api_client, key, name)
    again = post_key(api_client, key, name)

    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert not first.has_header("Idempotent-Replayed")
    assert ApiKey.objects.filter(tenant=tenant.tenant, name=name).count() == 1
    created = find_usable_api_key(again.json()["api_key"])
    assert created is not None
    assert created.pk == first.json()["id"]


def test_the_same_key_with_a_different_body_is_422(
    api_client: APIClient, tenant: TenantFixture, new_key: Callable[[], str]
) -> None:
    key = new_key()
    assert post_key(api_client, key, "first").status_code == 201

    refused = post_key(api_client, key, "second")

    assert refused.status_code == 422
    assert refused.json() == {
        "error": {
            "message": "This Idempotency-Key was already used with a different request (method, path, "
            "API key or body). Use a new key for a new request.",
            "type": "invalid_request_error",
            "code": "idempotency_key_mismatch",
            "param": None,
        }
    }
    assert not ApiKey.objects.filter(tenant=tenant.tenant, name="second").exists()


def test_another_tenant_using_the_same_key_is_independent(
    api_client: APIClient,
    outsider_client: APIClient,
    tenant: TenantFixture,
    other_tenant: TenantFixture,
    new_key: Callable[[], str],
) -> None:
    key, name = new_key(), f"shared-{uuid.uuid4().hex[:8]}"
    ours = post_key(api_client, key, name)

    theirs = post_key(outsider_client, key, name)
    ours_again = post_key(api_client, key, name)

    assert theirs.status_code == 201
    assert not theirs.has_header("Idempotent-Replayed")
    assert theirs.json()["api_key"] != ours.json()["api_key"]
    assert ours.json()["api_key"] not in theirs.content.decode()
    assert ours_again.content == ours.content
    assert ApiKey.objects.filter(tenant=tenant.tenant, name=name).count() == 1
    assert ApiKey.objects.filter(tenant=other_tenant.tenant, name=name).count() == 1


def test_another_api_key_of_the_tenant_cannot_replay_the_response(
    api_client: APIClient, tenant: TenantFixture, new_key: Callable[[], str]
) -> None:
    key = new_key()
    ours = post_key(api_client, key)
    second_admin = create_api_key(tenant.tenant, name="second admin", scopes=[ApiKeyScope.ADMIN])

    refused = post_key(tenant.api_client(second_admin.secret), key)

    assert refused.status_code == 422
    assert ours.json()["api_key"] not in refused.content.decode()


def test_the_secret_is_stored_sealed(
    api_client: APIClient, tenant: TenantFixture, new_key: Callable[[], str]
) -> None:
    key = new_key()
    secret = post_key(api_client, key).json()["api_key"]

    client = redis.Redis.from_url(settings.REDIS_URL)
    with client:
        record = cast(dict[bytes, bytes], client.hgetall(redis_key(tenant.tenant.pk, key)))
        ttl_seconds = client.ttl(redis_key(tenant.tenant.pk, key))

    stored = b"".join([*record.keys(), *record.values()])
    assert record[b"state"] == b"done"
    assert record[b"status"] == b"201"
    assert secret.encode() not in stored
    assert secret.split("_", 2)[2].encode() not in stored
    assert b"inference" not in stored
    assert 24 * 3600 - 60 < ttl_seconds <= 24 * 3600


def test_a_validation_error_is_not_stored_so_a_corrected_retry_runs(
    api_client: APIClient, tenant: TenantFixture, new_key: Callable[[], str]
) -> None:
    key = new_key()

    invalid = post_key(api_client, key, scopes=["no-such-scope"])
    corrected = post_key(api_client, key, "corrected")

    assert invalid.status_code == 400
    assert corrected.status_code == 201
    assert not corrected.has_header("Idempotent-Replayed")
    assert ApiKey.objects.filter(tenant=tenant.tenant, name="corrected").count() == 1


@pytest.mark.parametrize("value", ["", "x" * 256, "tab\there"], ids=["empty", "long", "tab"])
def test_a_malformed_key_is_400_and_creates_nothing(
    api_client: APIClient, tenant: TenantFixture, value: str
) -> None:
    before = ApiKey.objects.filter(tenant=tenant.tenant).count()

    response = post_key(api_client, value, "malformed")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"
    assert ApiKey.objects.filter(tenant=tenant.tenant).count() == before


def test_without_a_key_every_post_creates_a_key(api_client: APIClient, tenant: TenantFixture) -> None:
    name = f"plain-{uuid.uuid4().hex[:8]}"

    responses = [post_key(api_client, None, name) for _ in range(2)]

    assert [response.status_code for response in responses] == [201, 201]
    assert ApiKey.objects.filter(tenant=tenant.tenant, name=name).count() == 2
