"""The dashboard's agents pages: list and edit agents (with the spec's validation
messages), start a run and watch its events arrive, browse runs, replay one."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.selectors import active_api_keys_of
from agents import selectors, services
from agents.api.serializers import RunEventSerializer
from agents.models import Agent, Run
from agents.spec import SpecError, parse_source
from agents.web.forms import SpecForm, StartRunForm
from tenants.models import ApiKey, ApiKeyScope, Tenant
from tenants.web.base import PageAccess, manager_page, tenant_page

EXAMPLE_SPEC = """name: triage
input_schema: {type: object, properties: {text: {type: string}}, required: [text]}
steps:
  - id: classify
    kind: llm
    model: auto
    prompt: "Classify this ticket: {{ input.text }}"
    output_schema: {type: object, properties: {label: {type: string}}, required: [label]}
output: "{{ steps.classify.output }}"
"""


@tenant_page
def agent_list(request: HttpRequest, access: PageAccess) -> HttpResponse:
    context = {"agents": selectors.agents_list(), "alerts": selectors.compensation_alerts()[:20]}
    return render(request, "dashboard/agents.html", context)


@tenant_page
@require_http_methods(["GET", "POST"])
def agent_edit(request: HttpRequest, access: PageAccess, pk: int | None = None) -> HttpResponse:
    """Create (no pk) or edit an agent; saving an edit adds a version."""
    agent = get_object_or_404(Agent, pk=pk) if pk is not None else None
    if request.method == "POST":
        access.require_manager()
        form = SpecForm(request.POST)
        if form.is_valid() and (saved := save_spec(form, agent, access.user.email)) is not None:
            messages.success(request, f"Saved “{saved.name}” as version {saved.version}.")
            return redirect("agents:edit", pk=saved.pk)
    else:
        source = agent.versions.get(version=agent.version).source if agent else EXAMPLE_SPEC
        form = SpecForm(initial={"spec": source})
    context: dict[str, Any] = {"agent": agent, "form": form}
    if agent is not None:
        context["run_form"] = StartRunForm(keys=run_keys(access.tenant), input_schema=input_schema_of(agent))
        context["runs"] = selectors.runs_list(agent)[:20]
    return render(request, "dashboard/agents_edit.html", context)


def run_keys(tenant: Tenant) -> QuerySet[ApiKey]:
    """The keys a run may count its model calls against: active, allowed to call models."""
    scopes = Q(scopes__contains=[ApiKeyScope.INFERENCE]) | Q(scopes__contains=[ApiKeyScope.ADMIN])
    return active_api_keys_of(tenant).filter(scopes).order_by("name")


def input_schema_of(agent: Agent) -> Any:
    """The latest version's input_schema with its properties in the order written:
    the stored spec is jsonb, which reorders keys, so the source is read again."""
    version = agent.versions.get(version=agent.version)
    stored = version.spec.get("input_schema")
    try:
        written = parse_source(version.source).get("input_schema")
    except SpecError:
        return stored
    return written if written == stored else stored


def save_spec(form: SpecForm, agent: Agent | None, actor: str) -> Agent | None:
    """The saved agent, or None with the spec's error on the form."""
    source = form.cleaned_data["spec"]
    try:
        if agent is not None:
            return services.update_agent(agent, source, actor=actor)
        return services.create_agent(source, actor=actor)
    except SpecError as error:
        form.add_error("spec", f"{error.path or 'spec'}: {error.message}")
    except services.AgentNameTakenError as error:
        form.add_error("spec", f"name: an agent named “{error}” exists.")
    return None


@manager_page
@require_POST
def agent_delete(request: HttpRequest, access: PageAccess, pk: int) -> HttpResponse:
    agent = get_object_or_404(Agent, pk=pk)
    services.delete_agent(agent)
    messages.success(request, f"Deleted “{agent.name}”. Its runs are kept.")
    return redirect("agents:list")


@manager_page
@require_POST
def run_start(request: HttpRequest, access: PageAccess, pk: int) -> HttpResponse:
    agent = get_object_or_404(Agent, pk=pk)
    form = StartRunForm(request.POST, keys=run_keys(access.tenant), input_schema=input_schema_of(agent))
    if form.is_valid():
        try:
            run = services.start_run(
                agent, form.run_input(), form.cleaned_data["api_key"], form.cleaned_data["environment"]
            )
        except (SpecError, services.InputError) as error:
            form.add_error(None if form.has_input_fields else "input", f"{error.path}: {error.message}")
        else:
            return redirect("agents:run", pk=run.pk)
    source = agent.versions.get(version=agent.version).source
    context = {"agent": agent, "form": SpecForm(initial={"spec": source}), "run_form": form}
    context["runs"] = selectors.runs_list(agent)[:20]
    return render(request, "dashboard/agents_edit.html", context, status=400)


@tenant_page
def run_list(request: HttpRequest, access: PageAccess) -> HttpResponse:
    context = {"runs": selectors.runs_list()[:100], "alerts": selectors.compensation_alerts()[:20]}
    return render(request, "dashboard/agents_runs.html", context)


@tenant_page
def run_detail(request: HttpRequest, access: PageAccess, pk: int) -> HttpResponse:
    run = get_object_or_404(Run, pk=pk)
    context: dict[str, Any] = {
        "run": run,
        "events": selectors.events_of(run),
        "steps": selectors.run_steps(run),
    }
    if run.replay_of is not None and run.is_finished:
        context["diff"] = selectors.replay_diff(run.replay_of, run)
    return render(request, "dashboard/agents_run.html", context)


@tenant_page
@require_GET
def run_events(request: HttpRequest, access: PageAccess, pk: int) -> JsonResponse:
    """New events after `after` (the run page polls this while the run is live)."""
    run = get_object_or_404(Run, pk=pk)
    try:
        after = max(0, int(request.GET.get("after", "0")))
    except ValueError:
        after = 0
    events = RunEventSerializer(selectors.events_of(run, after)[:500], many=True).data
    return JsonResponse({"status": run.status, "finished": run.is_finished, "events": events})


@manager_page
@require_POST
def run_cancel(request: HttpRequest, access: PageAccess, pk: int) -> HttpResponse:
    run = services.cancel_run(get_object_or_404(Run, pk=pk))
    messages.info(request, f"Asked run {run.pk} to stop; it is {run.status}.")
    return redirect("agents:run", pk=run.pk)


@manager_page
@require_POST
def run_replay(request: HttpRequest, access: PageAccess, pk: int) -> HttpResponse:
    original = get_object_or_404(Run, pk=pk)
    keys = active_api_keys_of(access.tenant)
    api_key = (keys.filter(pk=original.api_key_id).first() if original.api_key_id else None) or keys.first()
    if api_key is None:
        messages.error(request, "A replay needs an active API key to count its model usage against.")
        return redirect("agents:run", pk=pk)
    try:
        replay = services.replay_run(original, api_key)
    except services.RunNotFinishedError as error:
        messages.error(request, str(error))
        return redirect("agents:run", pk=pk)
    return redirect("agents:run", pk=replay.pk)
