"""Staff's edits in the admin reach the served gateway's key cache at once, as the
API's do: a key revoked, a scope removed, a tenant deactivated is refused within
a second, not after the cache's 30 s. So is a bare queryset update, which no
service wraps: the models announce every write (tenants/gateway_cache.py)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from datetime import timedelta

import httpx
import pytest
import redis
from django.conf import settings
from django.test import Client
from django.utils import timezone
from pytest_django import DjangoDbBlocker

from accounts.models import User
from gateway.auth import KEY_CACHE_SECONDS
from tenants.gateway_cache import API_KEY_CHANGED_CHANNEL
from tenants.models import ApiKey, ApiKeyScope, Tenant
from tenants.services import (
    IssuedApiKey,
    ProvisionedTenant,
    create_api_key,
    generate_api_key_secret,
    provision_tenant,
    set_tenants_active,
)
from testing.database import committed
from testing.tenants import TEST_PASSWORD, TenantFixture

STAFF = "cache-staff@aiaas.example"
WITHIN_SECONDS = 1.0


@pytest.fixture
def listening(gateway: str) -> str:
    """The gateway, once its key cache listens for changes: its first subscription
    empties the cache, which would hide a change that was never announced."""
    status_of(gateway, f"aiaas_{'x' * 12}_{'y' * 43}")  # the first lookup starts the listener
    deadline = time.monotonic() + 5
    with redis.Redis.from_url(settings.REDIS_URL) as client:
        while client.pubsub_numsub(API_KEY_CHANGED_CHANNEL)[0][1] < 1:
            assert time.monotonic() < deadline, "the gateway's key cache never subscribed"
            time.sleep(0.02)
    return gateway


def status_of(gateway: str, key: str) -> int:
    response = httpx.get(f"{gateway}/models", headers={"Authorization": f"Bearer {key}"}, timeout=5)
    return response.status_code


def status_within(gateway: str, key: str, expected: int) -> int:
    """The gateway's answer to `key` once it is `expected`, or the last one after WITHIN_SECONDS."""
    deadline = time.monotonic() + WITHIN_SECONDS
    while (status := status_of(gateway, key)) != expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return status


def staff_post(path: str, data: Mapping[str, object]) -> int:
    """POST as staff through the real admin, committed as a request's would be."""

    def post() -> int:
        if not User.objects.filter(email=STAFF).exists():
            User.objects.create_superuser(STAFF, TEST_PASSWORD)
        client = Client(HTTP_HOST=settings.BASE_DOMAIN)
        client.force_login(User.objects.get(email=STAFF))
        return client.post(path, data).status_code

    return committed(post)


def cached_key(gateway: str, tenant: Tenant, scopes: list[str]) -> IssuedApiKey:
    issued = committed(lambda: create_api_key(tenant, name="cached", scopes=scopes))
    assert status_of(gateway, issued.secret) == 200  # the gateway caches it from here on
    return issued


def key_form(api_key: ApiKey, **changes: str) -> dict[str, object]:
    form: dict[str, object] = {
        "name": api_key.name,
        "scopes": ",".join(api_key.scopes),
        "allowed_models": "",
        "expires_at_0": "",
        "expires_at_1": "",
        "priority": api_key.priority,
        "requests_per_minute": "",
        "tokens_per_minute": "",
        "monthly_token_budget": "",
        "monthly_spend_budget_usd": "",
        "revoked_at_0": "",
        "revoked_at_1": "",
    }
    return {**form, **changes}


def test_a_key_revoked_on_its_admin_page_is_refused_by_the_gateway_within_a_second(
    listening: str, serving_tenant: TenantFixture
) -> None:
    issued = cached_key(listening, serving_tenant.tenant, [ApiKeyScope.INFERENCE])
    form = key_form(issued.api_key, revoked_at_0="2026-01-01", revoked_at_1="00:00:00")

    assert staff_post(f"/admin/tenants/apikey/{issued.api_key.pk}/change/", form) == 302
    assert status_within(listening, issued.secret, 401) == 401
    assert WITHIN_SECONDS < KEY_CACHE_SECONDS


def test_keys_revoked_by_the_admin_action_are_refused_within_a_second(
    listening: str, serving_tenant: TenantFixture
) -> None:
    issued = cached_key(listening, serving_tenant.tenant, [ApiKeyScope.INFERENCE])
    action = {"action": "revoke", "_selected_action": [str(issued.api_key.pk)]}

    assert staff_post("/admin/tenants/apikey/", action) == 302
    assert status_within(listening, issued.secret, 401) == 401
    assert committed(lambda: ApiKey.objects.get(pk=issued.api_key.pk).revoked_at) is not None


def test_a_scope_removed_in_the_admin_is_refused_within_a_second(
    listening: str, serving_tenant: TenantFixture
) -> None:
    issued = cached_key(listening, serving_tenant.tenant, [ApiKeyScope.INFERENCE, ApiKeyScope.READ])
    form = key_form(issued.api_key, scopes=ApiKeyScope.READ)

    assert staff_post(f"/admin/tenants/apikey/{issued.api_key.pk}/change/", form) == 302
    assert status_within(listening, issued.secret, 403) == 403
    assert committed(lambda: ApiKey.objects.get(pk=issued.api_key.pk).scopes) == [ApiKeyScope.READ]


def test_a_bare_queryset_update_reaches_the_gateway_within_a_second(
    listening: str, serving_tenant: TenantFixture
) -> None:
    issued = cached_key(listening, serving_tenant.tenant, [ApiKeyScope.INFERENCE])
    expired = timezone.now() - timedelta(minutes=1)

    committed(lambda: ApiKey.objects.filter(pk=issued.api_key.pk).update(expires_at=expired))

    assert status_within(listening, issued.secret, 401) == 401


def test_a_key_made_by_a_bare_bulk_create_works_on_the_gateway_within_a_second(
    listening: str, serving_tenant: TenantFixture
) -> None:
    prefix, secret, full_key = generate_api_key_secret()
    assert status_of(listening, full_key) == 401  # its prefix is now remembered as unknown
    api_key = ApiKey(
        tenant=serving_tenant.tenant,
        name="bulk",
        prefix=prefix,
        secret_hash=ApiKey.hash_secret(secret),
        scopes=[ApiKeyScope.INFERENCE],
    )

    committed(lambda: ApiKey.objects.bulk_create([api_key]))

    assert status_within(listening, full_key, 200) == 200


@pytest.fixture(scope="module")
def deactivated_later(django_db_setup: object, django_db_blocker: DjangoDbBlocker) -> ProvisionedTenant:
    """A tenant of its own: the serving tenant must stay active for other tests."""
    slug = f"cache-{secrets.token_hex(4)}"
    with django_db_blocker.unblock():
        return committed(
            lambda: provision_tenant(slug=slug, name="Deactivated", owner_email=f"o@{slug}.example")
        )


def test_a_tenant_deactivated_by_the_admin_action_is_refused_within_a_second(
    listening: str, deactivated_later: ProvisionedTenant
) -> None:
    tenant = deactivated_later.tenant
    committed(lambda: set_tenants_active(Tenant.objects.filter(pk=tenant.pk), active=True))
    key = deactivated_later.issued_key.secret
    assert status_of(listening, key) == 200
    action = {"action": "deactivate", "_selected_action": [str(tenant.pk)]}

    assert staff_post("/admin/tenants/tenant/", action) == 302
    assert status_within(listening, key, 401) == 401

    assert staff_post("/admin/tenants/tenant/", {**action, "action": "activate"}) == 302
    assert status_within(listening, key, 200) == 200


def test_a_tenant_deactivated_on_its_admin_page_is_refused_within_a_second(
    listening: str, deactivated_later: ProvisionedTenant
) -> None:
    tenant, domain = deactivated_later.tenant, deactivated_later.domain
    committed(lambda: set_tenants_active(Tenant.objects.filter(pk=tenant.pk), active=True))
    key = deactivated_later.issued_key.secret
    assert status_of(listening, key) == 200
    form = {
        "name": tenant.name,
        "slug": tenant.slug,
        "plan": str(tenant.plan_id or ""),
        "request_log_retention_days": "30",
        "cors_allowed_origins": "",
        "email_verified_at_0": "2026-01-01",
        "email_verified_at_1": "00:00:00",
        "domains-TOTAL_FORMS": "1",
        "domains-INITIAL_FORMS": "1",
        "domains-MIN_NUM_FORMS": "0",
        "domains-MAX_NUM_FORMS": "1000",
        "domains-0-id": str(domain.pk),
        "domains-0-tenant": str(tenant.pk),
        "domains-0-domain": domain.domain,
        "domains-0-is_primary": "on",
    }  # is_active unticked

    assert staff_post(f"/admin/tenants/tenant/{tenant.pk}/change/", form) == 302
    assert status_within(listening, key, 401) == 401
    assert committed(lambda: Tenant.objects.get(pk=tenant.pk).is_active) is False


def test_the_admin_action_never_deactivates_the_public_tenant(db: None) -> None:
    public = Tenant.objects.filter(schema_name=settings.PUBLIC_SCHEMA_NAME)

    assert set_tenants_active(public, active=False) == 0
    assert public.get().is_active is True


def test_the_admin_refuses_an_allowed_model_the_registry_does_not_have(
    serving_tenant: TenantFixture, registry: str
) -> None:
    issued = committed(
        lambda: create_api_key(serving_tenant.tenant, name="typo", scopes=[ApiKeyScope.INFERENCE])
    )
    change = f"/admin/tenants/apikey/{issued.api_key.pk}/change/"

    def allowed() -> list[str]:
        return list(committed(lambda: ApiKey.objects.get(pk=issued.api_key.pk).allowed_models))

    assert staff_post(change, key_form(issued.api_key, allowed_models="sim-small,sim-smal")) == 200
    assert allowed() == []
    assert staff_post(change, key_form(issued.api_key, allowed_models="sim-small")) == 302
    assert allowed() == ["sim-small"]
