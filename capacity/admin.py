"""Staff's capacity view: the degrade level (set here or with `manage.py degrade`),
the signals against their thresholds, queue depths, the busiest tenants, and
the audit log. The view is the degrade state's change list."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from aiaas.celery import app
from aiaas.observability.celery import celery_queue_lengths
from capacity import selectors, services, signals
from capacity.evaluator import configured_thresholds
from capacity.levels import LEVELS, RAISED_LEVELS, Level
from capacity.models import DegradeChange, DegradeState


class SetLevelForm(forms.Form):
    level = forms.ChoiceField(
        choices=[(level.value, level.value) for level in LEVELS],
        help_text="degraded or critical: held until changed. normal: back to automatic control.",
    )
    reason = forms.CharField(max_length=500, required=False)


@admin.register(DegradeState)
class DegradeStateAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def change_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """The row is written only through the level form (audited and announced)."""
        return HttpResponseRedirect(reverse("admin:capacity_degradestate_changelist"))

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            return super().changelist_view(request, extra_context)  # Django's own refusal
        form = SetLevelForm(request.POST or None)
        if request.method == "POST" and self.has_change_permission(request) and form.is_valid():
            who = getattr(request.user, "email", "") or request.user.get_username()
            level = Level(form.cleaned_data["level"])
            changed = services.set_by_staff(level, reason=form.cleaned_data["reason"], set_by=who)
            messages.info(request, f"Level set to {level}." if changed else "Nothing changed.")
            return HttpResponseRedirect(request.path)
        context = {
            **self.admin_site.each_context(request),
            "title": "Capacity",
            "opts": self.model._meta,
            "form": form,
            "can_change": self.has_change_permission(request),
            **capacity_overview(),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/capacity/overview.html", context)


def capacity_overview() -> dict[str, Any]:
    thresholds = configured_thresholds()
    measured = signals.measure()
    rows = [
        {
            "name": name,
            "value": value,
            "thresholds": [(level.value, thresholds.get(name, {}).get(level)) for level in RAISED_LEVELS],
        }
        for name, value in measured.items()
    ]
    return {
        "state": selectors.degrade_state(),
        "signals": rows,
        "queues": celery_queue_lengths(app),
        "tenants": selectors.top_tenants_by_load(),
        "changes": selectors.recent_changes(),
        "runbook_url": settings.DEGRADE_RUNBOOK_URL,
    }


@admin.register(DegradeChange)
class DegradeChangeAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("created_at", "previous_level", "level", "source", "set_by", "reason")
    list_filter = ("level", "source")
    readonly_fields = ("created_at", "previous_level", "level", "source", "set_by", "reason", "signals")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
