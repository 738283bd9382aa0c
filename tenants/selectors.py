"""Reads for tenants and API keys."""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.db.models import QuerySet

from aiaas.outbound import Policy, policy_of
from tenants.context import current_schema_name
from tenants.models import ApiKey, Tenant

API_KEY_PATTERN = re.compile(r"aiaas_(?P<prefix>[A-Za-z0-9]{12})_(?P<secret>[A-Za-z0-9_-]{20,100})")


def find_usable_api_key(raw_key: str) -> ApiKey | None:
    """The active, unexpired, unrevoked key of an active tenant, or None.

    The prefix finds at most one row through a unique index; the secret is then
    compared in constant time, so timing reveals nothing about the secret.
    """
    match = API_KEY_PATTERN.fullmatch(raw_key.strip())
    if match is None:
        return None
    api_key = api_key_with_prefix(match["prefix"])
    if api_key is None or not accepts_secret(api_key, match["secret"]) or not api_key.tenant.is_active:
        return None
    return api_key


def metered_api_keys() -> QuerySet[ApiKey]:
    """Keys loaded with what metering reads: the tenant, its plan and its billing
    account, which carries the billing period (billing.limits.limits_for reads it
    only when loaded, else counts by calendar month). Every caller of the
    gateway (/v1, WebSocket chats, agent runs) loads its key through here."""
    return ApiKey.objects.select_related("tenant", "tenant__plan", "tenant__billing_account")


def usable_api_key_by_id(api_key_id: int, tenant_id: int | None = None) -> ApiKey | None:
    """The key with this id, if it and its tenant are still usable."""
    keys = metered_api_keys().filter(pk=api_key_id, tenant__is_active=True)
    if tenant_id is not None:
        keys = keys.filter(tenant_id=tenant_id)
    api_key = keys.first()
    return api_key if api_key is not None and api_key.is_usable() else None


def api_key_with_prefix(prefix: str) -> ApiKey | None:
    """The key with this prefix, usable or not, of any tenant (one query)."""
    return metered_api_keys().filter(prefix=prefix).first()


def accepts_secret(api_key: ApiKey, secret: str) -> bool:
    """Whether `secret` is the key's and the key is unrevoked and unexpired (both final)."""
    return api_key.secret_matches(secret) and api_key.is_usable()


def api_keys_of(tenant: Tenant) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(tenant=tenant)


def tenant_for_host(hostname: str) -> Tenant | None:
    from tenants.models import Domain

    domain = Domain.objects.select_related("tenant").filter(domain=hostname, tenant__is_active=True).first()
    return domain.tenant if domain else None


def outbound_policy(tenant: Tenant, exempt_hosts: Iterable[str] = ()) -> Policy:
    """Where requests on `tenant`'s behalf may go: its hosts and ports, within the
    platform's ports; `exempt_hosts` (the caller's platform setting) may resolve to
    private addresses."""
    return policy_of(
        hosts=tenant.outbound_allowed_hosts, ports=tenant.outbound_allowed_ports, exempt_hosts=exempt_hosts
    )


def current_outbound_policy(exempt_hosts: Iterable[str] = ()) -> Policy:
    """The outbound policy of the tenant whose schema the connection is on, read now
    (an edit applies to the next request). Outside a tenant's schema there is no
    tenant: Tenant.DoesNotExist, never an open policy."""
    return outbound_policy(Tenant.objects.get(schema_name=current_schema_name()), exempt_hosts)
