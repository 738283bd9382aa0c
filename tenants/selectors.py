"""Reads for tenants and API keys."""

from __future__ import annotations

import re

from django.db.models import QuerySet

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


def api_key_with_prefix(prefix: str) -> ApiKey | None:
    """The key with this prefix, usable or not, of any tenant (one query)."""
    return (
        # The billing account carries the tenant's billing period (billing.limits.limits_for).
        ApiKey.objects.select_related("tenant", "tenant__plan", "tenant__billing_account")
        .filter(prefix=prefix)
        .first()
    )


def accepts_secret(api_key: ApiKey, secret: str) -> bool:
    """Whether `secret` is the key's and the key is unrevoked and unexpired (both final)."""
    return api_key.secret_matches(secret) and api_key.is_usable()


def api_keys_of(tenant: Tenant) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(tenant=tenant)


def tenant_for_host(hostname: str) -> Tenant | None:
    from tenants.models import Domain

    domain = Domain.objects.select_related("tenant").filter(domain=hostname, tenant__is_active=True).first()
    return domain.tenant if domain else None
