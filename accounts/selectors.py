"""Reads for a tenant's dashboard: its team and a summary of its API keys.

Each selector takes the tenant and evaluates its query inside that tenant's
schema (users) or filtered by it (keys, in the public schema), so a result
never holds another tenant's rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from django.db.models import Q, QuerySet
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts.models import User
from tenants.models import ApiKey, Tenant
from tenants.selectors import api_keys_of


class KeyStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class ListedKey:
    key: ApiKey
    status: KeyStatus


@dataclass(frozen=True)
class TeamMember:
    user: User
    has_accepted: bool  # False while the invitation is pending (no password yet)


@dataclass(frozen=True)
class DashboardSummary:
    member_count: int
    active_key_count: int


def active_api_keys_of(tenant: Tenant) -> QuerySet[ApiKey]:
    return (
        api_keys_of(tenant)
        .filter(revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
    )


def key_status(key: ApiKey) -> KeyStatus:
    if key.revoked_at is not None:
        return KeyStatus.REVOKED
    return KeyStatus.ACTIVE if key.is_usable() else KeyStatus.EXPIRED


def listed_keys_of(tenant: Tenant) -> list[ListedKey]:
    """The tenant's keys, newest first, each with its status."""
    return [ListedKey(key, key_status(key)) for key in api_keys_of(tenant)]


def team_of(tenant: Tenant) -> list[TeamMember]:
    """The tenant's users, by email."""
    with tenant_context(tenant):
        return [TeamMember(user, user.has_usable_password()) for user in User.objects.order_by("email")]


def dashboard_summary(tenant: Tenant) -> DashboardSummary:
    with tenant_context(tenant):
        member_count = User.objects.count()
    return DashboardSummary(member_count=member_count, active_key_count=active_api_keys_of(tenant).count())
