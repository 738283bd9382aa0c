"""Deleting a plan or a tenant drops its flag overrides with it (a cascade): each
flag it overrode gets an audit entry, as a change through flags.services would."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, pre_delete
from django.dispatch import receiver

from billing.models import Plan
from flags.selectors import FlagState, flag_state
from flags.services import record_change
from tenants.models import Tenant

# Where a deleted plan or tenant keeps the states of the flags it overrode, from its
# pre_delete to its post_delete (Django's collector sends both with the same object).
STATES_BEFORE = "_flag_states_before_deletion"


@receiver(pre_delete, sender=Plan)
@receiver(pre_delete, sender=Tenant)
def remember_overridden_flags(sender: type[Plan | Tenant], instance: Plan | Tenant, **_: Any) -> None:
    keys = set(instance.flag_overrides.values_list("flag__key", flat=True))
    states: dict[str, FlagState | None] = {key: flag_state(key) for key in sorted(keys)}
    setattr(instance, STATES_BEFORE, states)


@receiver(post_delete, sender=Plan)
@receiver(post_delete, sender=Tenant)
def audit_dropped_overrides(sender: type[Plan | Tenant], instance: Plan | Tenant, **_: Any) -> None:
    states: dict[str, FlagState | None] = getattr(instance, STATES_BEFORE, {})
    actor = f"deletion of the {sender._meta.verbose_name} {getattr(instance, 'slug', instance.pk)}"
    for key, before in states.items():
        record_change(key, actor, before)
