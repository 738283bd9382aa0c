"""Rotating SECRET_KEY: with the old key in SECRET_KEY_FALLBACKS, what it sealed or
signed still opens through the served platform (idempotent bodies on /v1 and
/api, sessions, welcome links, stream tokens) and new material is sealed under the
new key; with the old key dropped, what only it sealed no longer opens."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from django.conf import settings

from accounts.login_tokens import mint_login_token
from aiaas.idempotency import redis_key
from realtime import streams
from realtime.tests.clients import bearer, open_socket, read_all, ws_url
from testing.database import committed
from testing.tenants import TenantFixture

OLD, NEW, UNRELATED = (secrets.token_urlsafe(50) for _ in range(3))
CHAT = {"model": "auto", "max_tokens": 8, "messages": [{"role": "user", "content": "Rotate me."}]}


@pytest.fixture
def idempotency_keys(serving_tenant: TenantFixture) -> Iterator[list[str]]:
    """Idempotency-Keys this test uses; their records are removed afterwards."""
    used: list[str] = []
    yield used
    with redis.Redis.from_url(settings.REDIS_URL) as client:
        for key in used:
            client.delete(redis_key(serving_tenant.tenant.pk, key))


def rotate(settings: Any, secret: str, *fallbacks: str) -> None:
    settings.SECRET_KEY = secret
    settings.SECRET_KEY_FALLBACKS = list(fallbacks)


def chat(gateway: str, tenant: TenantFixture, idempotency_key: str) -> httpx.Response:
    headers = {**bearer(tenant.admin_key), "idempotency-key": idempotency_key}
    return httpx.post(f"{gateway}/chat/completions", json=CHAT, headers=headers, timeout=20)


def test_an_idempotent_chat_replays_across_a_rotation_and_new_bodies_use_the_new_key(
    gateway: str, serving_tenant: TenantFixture, settings: Any, idempotency_keys: list[str]
) -> None:
    before, after = f"rotation-{uuid.uuid4()}", f"rotation-{uuid.uuid4()}"
    idempotency_keys += [before, after]
    rotate(settings, OLD)
    first = chat(gateway, serving_tenant, before)

    rotate(settings, NEW, OLD)
    replayed = chat(gateway, serving_tenant, before)
    made_now = chat(gateway, serving_tenant, after)

    rotate(settings, NEW)
    new_alone = (chat(gateway, serving_tenant, after), chat(gateway, serving_tenant, before))
    assert first.status_code == replayed.status_code == made_now.status_code == 200
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.json() == first.json()
    assert new_alone[0].headers["idempotent-replayed"] == "true"
    assert new_alone[0].json() == made_now.json()
    assert new_alone[1].status_code == 409
    assert new_alone[1].json()["error"]["code"] == "idempotency_response_not_stored"


def test_an_idempotent_api_key_creation_replays_its_secret_across_a_rotation(
    platform_url: str, serving_tenant: TenantFixture, settings: Any, idempotency_keys: list[str]
) -> None:
    key = f"rotation-{uuid.uuid4()}"
    idempotency_keys.append(key)
    body = {"name": f"rotated-{key[-8:]}", "scopes": ["inference"]}
    headers = {**bearer(serving_tenant.admin_key), "idempotency-key": key, "host": settings.BASE_DOMAIN}
    rotate(settings, OLD)
    first = httpx.post(f"{platform_url}/api/v1/keys", json=body, headers=headers, timeout=20)

    rotate(settings, NEW, OLD)
    replayed = httpx.post(f"{platform_url}/api/v1/keys", json=body, headers=headers, timeout=20)

    assert first.status_code == replayed.status_code == 201, first.text
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.json()["api_key"] == first.json()["api_key"]


def dashboard(platform_url: str, tenant: TenantFixture, session: str) -> httpx.Response:
    return httpx.get(
        f"{platform_url}/dashboard/",
        headers={"host": tenant.host},
        cookies={settings.SESSION_COOKIE_NAME: session},
        timeout=20,
    )


def test_a_session_survives_a_rotation_until_its_key_is_dropped(
    platform_url: str, serving_tenant: TenantFixture, settings: Any
) -> None:
    rotate(settings, OLD)
    session = committed(lambda: serving_tenant.web_client().cookies[settings.SESSION_COOKIE_NAME].value)
    assert dashboard(platform_url, serving_tenant, session).status_code == 200

    rotate(settings, NEW, OLD)
    assert dashboard(platform_url, serving_tenant, session).status_code == 200

    rotate(settings, UNRELATED)
    signed_out = dashboard(platform_url, serving_tenant, session)
    assert signed_out.status_code == 302
    assert signed_out.headers["location"].startswith("/login/")


def test_a_welcome_link_signed_before_a_rotation_signs_in_after_it(
    platform_url: str, serving_tenant: TenantFixture, settings: Any
) -> None:
    rotate(settings, OLD)
    links = [mint_login_token(serving_tenant.tenant, serving_tenant.provisioned.owner.pk) for _ in range(2)]

    rotate(settings, NEW, OLD)
    kept = httpx.get(f"{platform_url}/welcome/{links[0]}/", headers={"host": serving_tenant.host}, timeout=20)
    rotate(settings, NEW)
    dropped = httpx.get(
        f"{platform_url}/welcome/{links[1]}/", headers={"host": serving_tenant.host}, timeout=20
    )

    assert kept.status_code == 302
    assert kept.headers["location"] == "/dashboard/"
    assert dropped.status_code == 400


def test_a_stream_token_minted_before_a_rotation_opens_its_stream_after_it(
    gateway: str, serving_tenant: TenantFixture, settings: Any
) -> None:
    """Stream tokens are random and stored by their hash: no key signs them."""
    stream_id = streams.new_stream_id("job")
    streams.publish(serving_tenant.tenant.schema_name, stream_id, {"type": "progress", "n": 1}, final=True)
    rotate(settings, OLD)
    minted = httpx.post(
        f"{gateway}/stream-tokens",
        json={"purpose": "streams", "stream_id": stream_id},
        headers=bearer(serving_tenant.admin_key),
        timeout=10,
    )

    rotate(settings, UNRELATED)

    async def subscribe() -> list[int]:
        url = ws_url(gateway, f"/ws/v1/streams/{stream_id}?token={minted.json()['token']}")
        async with open_socket(url) as connection:
            return [message["seq"] for message in await read_all(connection)]

    assert asyncio.run(asyncio.wait_for(subscribe(), 30)) == [1]
