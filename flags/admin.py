"""Flags for staff: a flag with its overrides on one page. Every save and delete goes
through flags/services.py's audit (who, when, the state before and after), which also
announces it; the audit entries are read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from flags.models import Flag, FlagChange, PlanOverride, TenantOverride
from flags.selectors import flag_state
from flags.services import delete_flag, record_change

# The flag's state before this request's save, read in save_model, audited in save_related.
STATE_BEFORE = "_flag_state_before"


def actor(request: HttpRequest) -> str:
    return str(request.user.get_username())


class PlanOverrideInline(admin.TabularInline):  # type: ignore[type-arg]
    model = PlanOverride
    extra = 0


class TenantOverrideInline(admin.TabularInline):  # type: ignore[type-arg]
    model = TenantOverride
    extra = 0
    raw_id_fields = ("tenant",)


@admin.register(Flag)
class FlagAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("key", "enabled_by_default", "rollout_percentage", "description", "updated_at")
    search_fields = ("key", "description")
    fields = ("key", "description", "enabled_by_default", "rollout_percentage")
    inlines = (PlanOverrideInline, TenantOverrideInline)

    def get_readonly_fields(self, request: HttpRequest, obj: Flag | None = None) -> tuple[str, ...]:
        return ("key",) if obj is not None else ()  # the audit trail follows a flag by key

    def save_model(self, request: HttpRequest, obj: Flag, form: ModelForm[Flag], change: bool) -> None:
        setattr(request, STATE_BEFORE, flag_state(obj.key) if change else None)
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: ModelForm[Flag], formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        record_change(form.instance.key, actor(request), getattr(request, STATE_BEFORE))

    def delete_model(self, request: HttpRequest, obj: Flag) -> None:
        delete_flag(obj.key, actor=actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Flag]) -> None:
        for key in queryset.values_list("key", flat=True):
            delete_flag(key, actor=actor(request))


@admin.register(FlagChange)
class FlagChangeAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The audit trail: written by flags/services.py only, never edited."""

    list_display = ("changed_at", "flag_key", "actor")
    list_filter = ("flag_key",)
    search_fields = ("flag_key", "actor")
    readonly_fields = ("flag_key", "actor", "changed_at", "old_value", "new_value")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: FlagChange | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: FlagChange | None = None) -> bool:
        return False
