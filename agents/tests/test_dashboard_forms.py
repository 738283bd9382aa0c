"""The agents pages as a person uses them: a run form drawn from the agent's
input_schema with the only key chosen, JSON (never Python reprs), one
timestamp format, and a run's steps as a graph with status, duration and cost."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django_tenants.utils import tenant_context

from agents import events
from agents.models import Run
from agents.tests.factories import make_agent, make_run, simple_spec
from tenants.models import ApiKeyScope
from tenants.services import create_api_key
from testing.tenants import TenantFixture

AGENTS = "/dashboard/agents/"
TYPED_SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "description": "What to <b>triage</b>"},
        "count": {"type": "integer", "minimum": 1, "maximum": 5},
        "ratio": {"type": "number"},
        "urgent": {"type": "boolean"},
        "lang": {"enum": ["en", "fr"]},
    },
    "required": ["text", "lang"],
}


def typed_agent(tenant: TenantFixture, name: str, schema: dict[str, Any] = TYPED_SCHEMA) -> int:
    return make_agent(tenant, simple_spec(name, input_schema=schema)).pk


def test_the_run_form_has_a_field_per_simple_property(tenant: TenantFixture) -> None:
    page = tenant.web_client().get(f"{AGENTS}{typed_agent(tenant, 'typed-form')}/")

    form = page.context["run_form"]
    assert form.has_input_fields
    assert [field.name for field in form.input_fields()] == [
        "input__text",
        "input__count",
        "input__ratio",
        "input__urgent",
        "input__lang",
    ]
    content = page.content.decode()
    text = re.search(r'<textarea name="input__text"[^>]*>', content)
    assert text is not None, content[content.find("input__text") - 300 : content.find("input__text") + 300]
    assert " required" in text.group(0)
    assert re.search(r'<input type="number" name="input__count"[^>]*min="1"[^>]*max="5"', content)
    assert '<input type="checkbox" name="input__urgent"' in content
    assert '<option value="fr">fr</option>' in content
    assert "What to &lt;b&gt;triage&lt;/b&gt;" in content
    assert 'name="input"' not in content


def test_a_run_started_from_the_fields_gets_typed_input(tenant: TenantFixture) -> None:
    pk = typed_agent(tenant, "typed-run")
    key = tenant.provisioned.issued_key.api_key

    response = tenant.web_client().post(
        f"{AGENTS}{pk}/runs/",
        {
            "input__text": "printer on fire",
            "input__count": "3",
            "input__ratio": "",
            "input__urgent": "on",
            "input__lang": "fr",
            "api_key": key.pk,
        },
    )

    with tenant_context(tenant.tenant):
        run = Run.objects.get(agent_id=pk)
    assert response["Location"] == f"{AGENTS}runs/{run.pk}/"
    assert run.input == {"text": "printer on fire", "count": 3, "urgent": True, "lang": "fr"}


def test_a_field_out_of_the_schemas_bounds_is_refused_on_the_form(tenant: TenantFixture) -> None:
    pk = typed_agent(tenant, "typed-bounds")

    response = tenant.web_client().post(
        f"{AGENTS}{pk}/runs/",
        {
            "input__text": "x",
            "input__count": "9",
            "input__lang": "de",
            "api_key": tenant.provisioned.issued_key.api_key.pk,
        },
    )

    assert response.status_code == 400
    errors = response.context["run_form"].errors
    assert errors["input__count"] == ["Ensure this value is less than or equal to 5."]
    assert "Select a valid choice." in errors["input__lang"][0]
    with tenant_context(tenant.tenant):
        assert not Run.objects.filter(agent_id=pk).exists()


def test_a_schema_a_form_cannot_draw_falls_back_to_json(tenant: TenantFixture) -> None:
    nested = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "string"}}}}
    pk = typed_agent(tenant, "nested-form", nested)
    browser = tenant.web_client()

    page = browser.get(f"{AGENTS}{pk}/")
    started = browser.post(
        f"{AGENTS}{pk}/runs/",
        {"input": '{"items": ["a"]}', "api_key": tenant.provisioned.issued_key.api_key.pk},
    )

    assert not page.context["run_form"].has_input_fields
    assert 'name="input"' in page.content.decode()
    assert started.status_code == 302
    with tenant_context(tenant.tenant):
        assert Run.objects.get(agent_id=pk).input == {"items": ["a"]}


def test_json_input_nested_too_deeply_or_with_a_lone_surrogate_is_refused_on_the_form(
    tenant: TenantFixture,
) -> None:
    nested = {"type": "object", "properties": {"items": {"type": "array"}}}
    pk = typed_agent(tenant, "json-refused", nested)
    browser = tenant.web_client()
    key = tenant.provisioned.issued_key.api_key.pk

    deep = browser.post(f"{AGENTS}{pk}/runs/", {"input": '{"items": ' + "[" * 5000, "api_key": key})
    surrogate = browser.post(f"{AGENTS}{pk}/runs/", {"input": '{"items": ["\\ud800"]}', "api_key": key})

    assert deep.status_code == surrogate.status_code == 400
    assert deep.context["run_form"].errors["input"] == ["Not valid JSON: nested too deeply."]
    with tenant_context(tenant.tenant):
        assert not Run.objects.filter(agent_id=pk).exists()


def test_the_only_key_that_can_call_models_is_chosen(tenant: TenantFixture) -> None:
    create_api_key(tenant.tenant, name="reader", scopes=[ApiKeyScope.READ])
    pk = typed_agent(tenant, "one-key")
    only = tenant.provisioned.issued_key.api_key

    content = tenant.web_client().get(f"{AGENTS}{pk}/").content.decode()

    assert f'<option value="{only.pk}" selected>' in content
    assert "reader" not in content


def test_with_several_keys_none_is_chosen_for_you(tenant: TenantFixture) -> None:
    create_api_key(tenant.tenant, name="second", scopes=[ApiKeyScope.INFERENCE])

    content = tenant.web_client().get(f"{AGENTS}{typed_agent(tenant, 'two-keys')}/").content.decode()

    assert '<option value="" selected>Choose a key</option>' in content


def test_the_run_page_shows_json_and_one_timestamp_format(tenant: TenantFixture) -> None:
    run = make_run(tenant, simple_spec("json-run"), run_input={"text": "hi", "flag": True, "none": None})

    content = tenant.web_client().get(f"{AGENTS}runs/{run.pk}/").content.decode()

    assert "&quot;flag&quot;: true" in content
    assert "&quot;none&quot;: null" in content
    for python_repr in ("True", "None", "{&#x27;"):
        assert python_repr not in content
    assert re.search(r"<dd>\d{4}-\d\d-\d\d \d\d:\d\d UTC</dd>", content)


def test_the_run_page_draws_each_step_with_status_duration_and_cost(tenant: TenantFixture) -> None:
    run = make_run(tenant, simple_spec("steps-run"))
    with tenant_context(tenant.tenant):
        events.append(run, events.STEP_STARTED, step_id="answer", data={"kind": "llm", "attempt": 1})
        usage = {
            "request_id": "req_1",
            "model": "sim-small",
            "tier": 1,
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "cost_usd": "0.0125",
        }
        events.append(run, events.LLM_USAGE, step_id="answer", data=usage)
        events.append(run, events.STEP_SUCCEEDED, step_id="answer", data={"output": "ok", "attempt": 1})
        events.append(run, events.STEP_STARTED, step_id="check", data={"kind": "tool", "attempt": 1})
        events.append(run, events.STEP_FAILED, step_id="check", data={"error": "boom", "attempt": 1})

    page = tenant.web_client().get(f"{AGENTS}runs/{run.pk}/")

    steps = page.context["steps"]
    assert [(s.step_id, s.kind, s.status, s.cost_usd, s.tokens) for s in steps] == [
        ("answer", "llm", "succeeded", Decimal("0.0125"), 15),
        ("check", "tool", "failed", Decimal(0), 0),
    ]
    assert all(step.duration_ms is not None and step.duration_ms >= 0 for step in steps)
    content = page.content.decode()
    assert '<li class="step step-succeeded" data-step="answer">' in content
    assert "$0.0125 · 15 tokens" in content
    assert '<div class="small step-error">boom</div>' in content
