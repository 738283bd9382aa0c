"""The dashboard's prompt pages: the tenant's prompts in the registry, each
one's versions and audit history, a new version from the editor, a rendered
preview, the diff between two versions, and promotion and rollback (owners)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import Role
from registry import prompts, selectors, services
from registry.models import Entry, Kind
from registry.web.forms import PromptForm, RenderForm
from tenants.web.base import PageAccess, manager_page, tenant_page

EXAMPLE_TEMPLATE = "Classify this ticket as bug, question or request:\n\n{{ input.text }}"


@tenant_page
@require_GET
def prompt_list(request: HttpRequest, access: PageAccess) -> HttpResponse:
    production = selectors.production_versions(Kind.PROMPT)
    rows = [(entry, production.get(entry.name)) for entry in selectors.latest_versions(Kind.PROMPT)]
    return render(request, "dashboard/prompts.html", {"rows": rows})


@tenant_page
@require_http_methods(["GET", "POST"])
def prompt_new(request: HttpRequest, access: PageAccess) -> HttpResponse:
    form = PromptForm(request.POST or None, initial={"template": EXAMPLE_TEMPLATE})
    if request.method == "POST":
        access.require_manager()
        if form.is_valid() and (entry := save_version(form, access)) is not None:
            return redirect("prompts:detail", name=entry.name)
    return render(request, "dashboard/prompts_edit.html", {"form": form})


@tenant_page
@require_http_methods(["GET", "POST"])
def prompt_detail(request: HttpRequest, access: PageAccess, name: str) -> HttpResponse:
    """The versions and history of a prompt, and the editor saving its next version."""
    versions = list(selectors.versions_of(Kind.PROMPT, name))
    if not versions:
        raise Http404("No such prompt.")
    form = PromptForm(initial={"name": name, "template": versions[0].manifest["template"]})
    if request.method == "POST":
        access.require_manager()
        form = PromptForm({**request.POST.dict(), "name": name})
        if form.is_valid() and (entry := save_version(form, access)) is not None:
            messages.success(request, f"Saved “{entry.name}” version {entry.version} as a draft.")
            return redirect("prompts:detail", name=name)
    context: dict[str, Any] = {
        "name": name,
        "versions": versions,
        "history": selectors.history_of(Kind.PROMPT, name)[:50],
        "form": form,
        "is_owner": is_owner(access),
    }
    return render(request, "dashboard/prompts_detail.html", context)


def save_version(form: PromptForm, access: PageAccess) -> Entry | None:
    """The new version, or None with the reason on the form."""
    try:
        return prompts.create_version(
            form.cleaned_data["name"], form.cleaned_data["template"], actor=access.user.email
        )
    except prompts.PromptError as error:
        form.add_error("template", str(error))
    except services.RegistryError as error:
        form.add_error("name", str(error))
    return None


@tenant_page
@require_http_methods(["GET", "POST"])
def prompt_version(request: HttpRequest, access: PageAccess, name: str, version: int) -> HttpResponse:
    """One version's template and variables, and its text rendered with given variables."""
    entry = version_or_404(name, version)
    form = RenderForm(request.POST or None)
    rendered = None
    if request.method == "POST" and form.is_valid():
        try:
            rendered = prompts.render(entry, form.cleaned_data["variables"])
        except prompts.PromptError as error:
            form.add_error("variables", str(error))
    context = {"entry": entry, "form": form, "rendered": rendered, "is_owner": is_owner(access)}
    return render(request, "dashboard/prompts_version.html", context, status=400 if form.errors else 200)


@tenant_page
@require_GET
def prompt_diff(request: HttpRequest, access: PageAccess, name: str) -> HttpResponse:
    """Two versions compared (`from`, `to`; by default the latest and the one before),
    side by side or unified (`view`)."""
    versions = list(selectors.versions_of(Kind.PROMPT, name))
    if not versions:
        raise Http404("No such prompt.")
    after = chosen(versions, request.GET.get("to"), versions[0])
    before = chosen(versions, request.GET.get("from"), versions[min(1, len(versions) - 1)])
    unified = request.GET.get("view") == "unified"
    context = {
        "name": name,
        "versions": versions,
        "before": before,
        "after": after,
        "unified": unified,
        "rows": None if unified else prompts.side_by_side(before, after),
        "lines": prompts.unified_diff(before, after) if unified else None,
    }
    return render(request, "dashboard/prompts_diff.html", context)


def chosen(versions: list[Entry], number: str | None, default: Entry) -> Entry:
    if number is None:
        return default
    found = next((entry for entry in versions if str(entry.version) == number), None)
    if found is None:
        raise Http404("No such version.")
    return found


@manager_page
@require_POST
def prompt_promote(request: HttpRequest, access: PageAccess, name: str, version: int) -> HttpResponse:
    entry = version_or_404(name, version)
    require_owner(access)
    try:
        promoted = services.promote(entry, actor=access.user.email)
    except services.RegistryError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Version {promoted.version} is now {promoted.state}.")
    return redirect("prompts:detail", name=name)


@manager_page
@require_POST
def prompt_rollback(request: HttpRequest, access: PageAccess, name: str) -> HttpResponse:
    if not selectors.versions_of(Kind.PROMPT, name).exists():
        raise Http404("No such prompt.")
    require_owner(access)
    try:
        current = services.rollback(Kind.PROMPT, name, actor=access.user.email)
    except services.RegistryError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Rolled back: version {current.version} is in production again.")
    return redirect("prompts:detail", name=name)


def version_or_404(name: str, version: int) -> Entry:
    entry = selectors.pinned(Kind.PROMPT, name, version)
    if entry is None:
        raise Http404("No such version.")
    return entry


def is_owner(access: PageAccess) -> bool:
    return access.user.role == Role.OWNER


def require_owner(access: PageAccess) -> None:
    if not is_owner(access):
        raise PermissionDenied("Only owners promote or roll back prompts.")
