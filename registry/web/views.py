"""The dashboard's prompt pages: the tenant's prompts in the registry, each
one's versions and audit history, a new version from the editor, a rendered
preview, the diff between two versions, and promotion and rollback (owners)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
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
            return redirect("prompts:version", pk=entry.pk)
    return render(request, "dashboard/prompts_edit.html", {"form": form})


@tenant_page
@require_http_methods(["GET", "POST"])
def prompt_version(request: HttpRequest, access: PageAccess, pk: int) -> HttpResponse:
    """One version (its template, rendered with given variables), the prompt's
    versions and history, and the editor saving its next version."""
    entry = get_object_or_404(selectors.entries(Kind.PROMPT), pk=pk)
    render_form, rendered = RenderForm(), None
    edit_form = PromptForm(initial={"name": entry.name, "template": entry.manifest["template"]})
    if request.method == "POST" and "variables" in request.POST:
        render_form = RenderForm(request.POST)
        rendered = render_preview(render_form, entry)
    elif request.method == "POST":
        access.require_manager()
        edit_form = PromptForm({**request.POST.dict(), "name": entry.name})
        if edit_form.is_valid() and (saved := save_version(edit_form, access)) is not None:
            messages.success(request, f"Saved “{saved.name}” version {saved.version} as a draft.")
            return redirect("prompts:version", pk=saved.pk)
    context: dict[str, Any] = {
        "entry": entry,
        "versions": selectors.versions_of(Kind.PROMPT, entry.name),
        "history": selectors.history_of(Kind.PROMPT, entry.name)[:50],
        "render_form": render_form,
        "rendered": rendered,
        "form": edit_form,
        "is_owner": is_owner(access),
    }
    failed = bool(render_form.errors or edit_form.errors)
    return render(request, "dashboard/prompts_version.html", context, status=400 if failed else 200)


def render_preview(form: RenderForm, entry: Entry) -> str | None:
    if not form.is_valid():
        return None
    try:
        return prompts.render(entry, form.cleaned_data["variables"])
    except prompts.PromptError as error:
        form.add_error("variables", str(error))
        return None


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
@require_GET
def prompt_diff(request: HttpRequest, access: PageAccess, pk: int) -> HttpResponse:
    """Two versions of the prompt compared (`from`, `to` version numbers; by default
    this version and the one before it), side by side or unified (`view`)."""
    entry = get_object_or_404(selectors.entries(Kind.PROMPT), pk=pk)
    versions = list(selectors.versions_of(Kind.PROMPT, entry.name))
    earlier = [version for version in versions if version.version < entry.version]
    after = chosen(versions, request.GET.get("to"), entry)
    before = chosen(versions, request.GET.get("from"), earlier[0] if earlier else entry)
    unified = request.GET.get("view") == "unified"
    context = {
        "entry": entry,
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
def prompt_promote(request: HttpRequest, access: PageAccess, pk: int) -> HttpResponse:
    entry = get_object_or_404(selectors.entries(Kind.PROMPT), pk=pk)
    require_owner(access)
    try:
        promoted = services.promote(entry, actor=access.user.email)
    except services.RegistryError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Version {promoted.version} is now {promoted.state}.")
    return redirect("prompts:version", pk=pk)


@manager_page
@require_POST
def prompt_rollback(request: HttpRequest, access: PageAccess, pk: int) -> HttpResponse:
    entry = get_object_or_404(selectors.entries(Kind.PROMPT), pk=pk)
    require_owner(access)
    try:
        current = services.rollback(Kind.PROMPT, entry.name, actor=access.user.email)
    except services.RegistryError as error:
        messages.error(request, str(error))
        return redirect("prompts:version", pk=pk)
    messages.success(request, f"Rolled back: version {current.version} is in production again.")
    return redirect("prompts:version", pk=current.pk)


def is_owner(access: PageAccess) -> bool:
    return access.user.role == Role.OWNER


def require_owner(access: PageAccess) -> None:
    if not is_owner(access):
        raise PermissionDenied("Only owners promote or roll back prompts.")
