"""Writes of flags and overrides. Each change writes one audit entry (the flag's state
before and after) and, once committed, tells every process to reload its flags."""

from __future__ import annotations

from django.db import transaction

from aiaas import control_bus
from billing.models import Plan
from flags import cache
from flags.models import Flag, FlagChange, PlanOverride, TenantOverride
from flags.selectors import FlagState, flag_state
from tenants.models import Tenant


def save_flag(
    key: str,
    *,
    actor: str,
    enabled_by_default: bool,
    rollout_percentage: int | None = None,
    description: str = "",
) -> Flag:
    """Create the flag or change it; ValidationError for a bad key or percentage."""
    with transaction.atomic():
        before = flag_state(key)
        flag = Flag.objects.filter(key=key).first() or Flag(key=key)
        flag.enabled_by_default = enabled_by_default
        flag.rollout_percentage = rollout_percentage
        flag.description = description
        flag.full_clean()
        flag.save()
        record_change(key, actor, before)
    return flag


def set_plan_override(key: str, plan: Plan, enabled: bool | None, *, actor: str) -> None:
    """Turn the flag on or off for every tenant on `plan`; None removes the override."""
    with transaction.atomic():
        before = flag_state(key)
        flag = Flag.objects.get(key=key)
        if enabled is None:
            PlanOverride.objects.filter(flag=flag, plan=plan).delete()
        else:
            PlanOverride.objects.update_or_create(flag=flag, plan=plan, defaults={"enabled": enabled})
        record_change(key, actor, before)


def set_tenant_override(key: str, tenant: Tenant, enabled: bool | None, *, actor: str) -> None:
    """Turn the flag on or off for `tenant`, whatever its plan; None removes the override."""
    with transaction.atomic():
        before = flag_state(key)
        flag = Flag.objects.get(key=key)
        if enabled is None:
            TenantOverride.objects.filter(flag=flag, tenant=tenant).delete()
        else:
            TenantOverride.objects.update_or_create(flag=flag, tenant=tenant, defaults={"enabled": enabled})
        record_change(key, actor, before)


def delete_flag(key: str, *, actor: str) -> None:
    """Delete the flag and its overrides; its audit entries stay."""
    with transaction.atomic():
        before = flag_state(key)
        Flag.objects.filter(key=key).delete()
        record_change(key, actor, before)


def record_change(key: str, actor: str, before: FlagState | None) -> FlagChange | None:
    """Audit what changed `key` since `before` (nothing changed: no entry) and announce
    it after the commit. Call it inside the transaction that made the change."""
    after = flag_state(key)
    if after == before:
        return None
    change = FlagChange.objects.create(flag_key=key, actor=actor, old_value=before, new_value=after)
    transaction.on_commit(announce_flags_changed, robust=True)
    return change


def announce_flags_changed() -> None:
    """This process at once, every other one within a second (aiaas/control_bus.py)."""
    cache.forget()
    control_bus.announce(cache.TOPIC)
