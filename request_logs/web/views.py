"""The dashboard's Request logs: the tenant's logged requests, filtered and paged,
each with its prompt and answer, and the owner's logging settings. Prompts are
sensitive: owners and admins read them (as the API's admin keys do), and only
the owner turns logging on or off."""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Role
from request_logs.selectors import logged_models, request_log_of, request_logs_of
from request_logs.services import update_logging_settings
from request_logs.web.forms import LogFilterForm, LoggingSettingsForm
from tenants.models import ApiKey, Tenant
from tenants.web.base import PageAccess, manager_page

PAGE_SIZE = 50


def key_labels(tenant: Tenant) -> dict[int, str]:
    """Every key the tenant has had (revoked ones name old rows too)."""
    return {
        key.pk: f"{key.name} ({key.prefix})" for key in ApiKey.objects.filter(tenant=tenant).order_by("name")
    }


def settings_form(tenant: Tenant) -> LoggingSettingsForm:
    return LoggingSettingsForm(
        initial={
            "enabled": tenant.request_logging_enabled,
            "retention_days": tenant.request_log_retention_days,
        }
    )


def is_owner(access: PageAccess) -> bool:
    return access.user.role == Role.OWNER


@manager_page
@require_GET
def request_logs(request: HttpRequest, access: PageAccess) -> HttpResponse:
    tenant = access.tenant
    labels = key_labels(tenant)
    form = LogFilterForm(request.GET, keys=list(labels.items()), models=logged_models())
    context: dict[str, object] = {
        "filters": form,
        "key_labels": labels,
        "settings_form": settings_form(tenant),
        "is_owner": is_owner(access),
        "logging_enabled": tenant.request_logging_enabled,
        "retention_days": tenant.request_log_retention_days,
    }
    if not form.is_valid():
        return render(request, "dashboard/request_logs.html", context, status=400)
    logs = request_logs_of(tenant, form.filters())
    page = Paginator(logs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context |= {
        "page": page,
        "rows": [(log, labels.get(log.api_key_id or 0, "")) for log in page.object_list],
        "page_query": query.urlencode(),
        "filtered": any(value for name, value in request.GET.items() if name != "page"),
    }
    return render(request, "dashboard/request_logs.html", context)


@manager_page
@require_GET
def request_log(request: HttpRequest, access: PageAccess, pk: int) -> HttpResponse:
    log = request_log_of(access.tenant, pk)
    if log is None:
        raise Http404("No such request log.")
    body = log.request_body if isinstance(log.request_body, dict) else {}
    context = {
        "log": log,
        "key_label": key_labels(access.tenant).get(log.api_key_id or 0, ""),
        "messages_sent": [
            (message.get("role", ""), as_text(message.get("content")))
            for message in body.get("messages") or []
            if isinstance(message, dict)
        ],
        "parameters": json.dumps(
            {name: value for name, value in body.items() if name != "messages"}, indent=2
        ),
        "back_query": request.GET.get("back", ""),
    }
    return render(request, "dashboard/request_log.html", context)


def as_text(content: object) -> str:
    """A message's content: its text, or its parts (images, tool results) as JSON."""
    return content if isinstance(content, str) else json.dumps(content, indent=2)


@manager_page
@require_POST
def logging_settings(request: HttpRequest, access: PageAccess) -> HttpResponse:
    if not is_owner(access):
        raise PermissionDenied("Only the workspace's owner can change request logging.")
    form = LoggingSettingsForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(error) for errors in form.errors.values() for error in errors))
        return redirect("dashboard:request-logs")
    changed = update_logging_settings(
        access.tenant,
        enabled=form.cleaned_data["enabled"],
        retention_days=form.cleaned_data["retention_days"],
        changed_by=access.user.email,
    )
    if changed:
        state = "on" if access.tenant.request_logging_enabled else "off"
        messages.success(
            request,
            f"Request logging is {state}; logs are kept {access.tenant.request_log_retention_days} days.",
        )
    return redirect("dashboard:request-logs")
