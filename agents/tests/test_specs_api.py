"""Agents over REST: versioned specs, validation errors that name the path, and
runs and events that another tenant can neither read nor start."""

from __future__ import annotations

import pytest
import yaml
from django_tenants.utils import tenant_context
from rest_framework.test import APIClient

from agents import services
from agents.models import Agent, Run, RunEvent, RunStatus
from agents.spec import SpecError, apply_overlay, compile_spec
from testing.tenants import TenantFixture

TRIAGE_YAML = """
name: triage
input_schema: {type: object, properties: {text: {type: string}}, required: [text]}
steps:
  - id: classify
    kind: llm
    model: auto
    prompt: "Classify this ticket: {{ input.text }}"
    output_schema: {type: object, properties: {label: {type: string}}, required: [label]}
output: "{{ steps.classify.output }}"
"""


def spec_with(**changes: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "name": "triage",
        "steps": [{"id": "classify", "kind": "llm", "prompt": "Classify: {{ input.text }}"}],
    }
    return {**spec, **changes}


@pytest.mark.parametrize(
    ("spec", "param"),
    [
        (spec_with(steps=[{"id": "a", "kind": "teleport"}]), "spec.steps[0].kind"),
        (spec_with(steps=[{"id": "a", "kind": "llm"}]), "spec.steps[0]"),
        (spec_with(steps=[{"id": "a", "kind": "llm", "prompt": "x", "colour": 1}]), "spec.steps[0]"),
        (
            spec_with(steps=[{"id": "a", "kind": "llm", "prompt": "x", "max_tokens": "many"}]),
            "spec.steps[0].max_tokens",
        ),
        (spec_with(steps=[{"id": "a", "kind": "llm", "prompt": "{{ input.text "}]), "spec.steps[0].prompt"),
        (
            spec_with(steps=[{"id": "a", "kind": "llm", "prompt": "x", "output_schema": {"type": "frog"}}]),
            "spec.steps[0].output_schema.type",
        ),
        (
            spec_with(
                steps=[{"id": "a", "kind": "llm", "prompt": "x"}, {"id": "a", "kind": "llm", "prompt": "y"}]
            ),
            "spec.steps[1].id",
        ),
        (spec_with(steps=[{"use": "missing"}]), "spec.steps[0].use"),
        (
            spec_with(
                steps=[{"id": "v", "kind": "validate", "value": "x", "schema": {}, "retry": {"step": "nope"}}]
            ),
            "spec.steps[0].retry.step",
        ),
        (spec_with(steps=[{"id": "t", "kind": "tool", "tool": "unsigned_tool"}]), "spec.steps[0].tool"),
        (  # the retried llm step is inside a branch that may not have run
            spec_with(
                steps=[
                    {
                        "id": "c",
                        "kind": "condition",
                        "if": "true",
                        "then": [{"id": "a", "kind": "llm", "prompt": "x"}],
                    },
                    {"id": "v", "kind": "validate", "value": "x", "schema": {}, "retry": {"step": "a"}},
                ]
            ),
            "spec.steps[1].retry.step",
        ),
        (  # a validate inside a map cannot retry an llm step outside it
            spec_with(
                steps=[
                    {"id": "a", "kind": "llm", "prompt": "x"},
                    {
                        "id": "m",
                        "kind": "map",
                        "over": "{{ input.items }}",
                        "step": {
                            "id": "v",
                            "kind": "validate",
                            "value": "x",
                            "schema": {},
                            "retry": {"step": "a"},
                        },
                    },
                ]
            ),
            "spec.steps[1].step.retry.step",
        ),
        (spec_with(name="no spaces allowed"), "spec.name"),
        (
            spec_with(overlays={"prod": {"steps": {"ghost": {"model": "x"}}}}),
            "spec.overlays.prod.steps.ghost",
        ),
        (  # the template parser recurses too deep: a 400, not a 500
            spec_with(
                steps=[{"id": "a", "kind": "llm", "prompt": "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}"}]
            ),
            "spec.steps[0].prompt",
        ),
        (  # an overlay is checked applied: its values obey the same schema
            spec_with(overlays={"prod": {"steps": {"classify": {"max_tokens": "many"}}}}),
            "spec.overlays.prod.steps.classify.max_tokens",
        ),
        (
            spec_with(overlays={"prod": {"steps": {"classify": {"prompt": "{{ input.text "}}}}),
            "spec.overlays.prod.steps.classify.prompt",
        ),
        (
            spec_with(overlays={"prod": {"steps": {"classify": {"kind": "tool", "tool": "unsigned_tool"}}}}),
            "spec.overlays.prod.steps.classify",
        ),
        ("name: [unclosed", "spec"),
        ("just text", "spec"),
    ],
)
def test_an_invalid_spec_gets_400_naming_the_path(api_client: APIClient, spec: object, param: str) -> None:
    response = api_client.post("/api/v1/agents", {"spec": spec}, format="json")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["param"] == param, error
    assert error["code"] == "invalid_spec"
    assert error["message"].startswith(f"{param}: ")


def test_it_creates_an_agent_from_yaml_text(api_client: APIClient, tenant: TenantFixture) -> None:
    response = api_client.post("/api/v1/agents", {"spec": TRIAGE_YAML}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["object"], body["name"], body["version"]) == ("agent", "triage", 1)
    assert body["spec"]["steps"][0]["output_schema"]["required"] == ["label"]
    assert body["spec_source"] == TRIAGE_YAML
    with tenant_context(tenant.tenant):
        assert Agent.objects.filter(pk=body["id"]).count() == 1


def test_put_adds_a_version_and_runs_keep_theirs(api_client: APIClient, tenant: TenantFixture) -> None:
    created = api_client.post("/api/v1/agents", {"spec": spec_with()}, format="json").json()
    with tenant_context(tenant.tenant):
        agent = Agent.objects.get(pk=created["id"])
        run = services.start_run(agent, {"text": "hi"}, tenant.provisioned.issued_key.api_key)

    changed = spec_with(steps=[{"id": "classify", "kind": "llm", "prompt": "Label: {{ input.text }}"}])
    response = api_client.put(f"/api/v1/agents/{created['id']}", {"spec": changed}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["version"] == 2
    assert response.json()["spec"]["steps"][0]["prompt"] == "Label: {{ input.text }}"
    with tenant_context(tenant.tenant):
        run.refresh_from_db()
        assert run.agent_version == 1
        assert run.spec["steps"][0]["prompt"] == "Classify: {{ input.text }}"


def test_a_second_agent_with_the_same_name_is_refused(api_client: APIClient) -> None:
    assert api_client.post("/api/v1/agents", {"spec": spec_with()}, format="json").status_code == 201
    response = api_client.post("/api/v1/agents", {"spec": spec_with()}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "spec.name"


def test_starting_a_run_checks_the_input_against_input_schema(
    api_client: APIClient, tenant: TenantFixture
) -> None:
    created = api_client.post("/api/v1/agents", {"spec": TRIAGE_YAML}, format="json").json()

    response = api_client.post(f"/api/v1/agents/{created['id']}/runs", {"input": {"text": 42}}, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == "input.text"
    with tenant_context(tenant.tenant):
        assert Run.objects.count() == 0


def test_a_started_run_is_queued_with_its_first_event(api_client: APIClient, tenant: TenantFixture) -> None:
    created = api_client.post("/api/v1/agents", {"spec": TRIAGE_YAML}, format="json").json()

    response = api_client.post(
        f"/api/v1/agents/{created['id']}/runs", {"input": {"text": "printer on fire"}}, format="json"
    )

    assert response.status_code == 201, response.content
    run = response.json()
    assert (run["object"], run["status"], run["agent_version"], run["output"]) == ("run", "queued", 1, None)
    events = api_client.get(f"/api/v1/runs/{run['id']}/events").json()
    assert [(e["seq"], e["type"]) for e in events["data"]] == [(1, "run.queued")]
    assert events["data"][0]["data"] == {"input": {"text": "printer on fire"}, "environment": ""}


def test_cancelling_a_queued_run_ends_it_at_once(api_client: APIClient, tenant: TenantFixture) -> None:
    created = api_client.post("/api/v1/agents", {"spec": TRIAGE_YAML}, format="json").json()
    run = api_client.post(
        f"/api/v1/agents/{created['id']}/runs", {"input": {"text": "x"}}, format="json"
    ).json()

    response = api_client.post(f"/api/v1/runs/{run['id']}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == RunStatus.CANCELLED
    with tenant_context(tenant.tenant):
        types = list(RunEvent.objects.filter(run_id=run["id"]).values_list("type", flat=True))
    assert types == ["run.queued", "run.cancel_requested", "run.cancelled"]


def test_only_a_finished_run_can_be_replayed(api_client: APIClient, tenant: TenantFixture) -> None:
    created = api_client.post("/api/v1/agents", {"spec": TRIAGE_YAML}, format="json").json()
    run = api_client.post(
        f"/api/v1/agents/{created['id']}/runs", {"input": {"text": "x"}}, format="json"
    ).json()

    refused = api_client.post(f"/api/v1/runs/{run['id']}/replay")
    api_client.post(f"/api/v1/runs/{run['id']}/cancel")
    replayed = api_client.post(f"/api/v1/runs/{run['id']}/replay")

    assert refused.status_code == 409, refused.content
    assert refused.json()["error"] == {
        "message": f"Run {run['id']} is queued; only a finished run can be replayed.",
        "type": "conflict_error",
        "code": "invalid_state",
        "param": None,
    }
    assert replayed.status_code == 201, replayed.content
    with tenant_context(tenant.tenant):
        assert list(Run.objects.exclude(pk=run["id"]).values_list("replay_of_id", flat=True)) == [run["id"]]


def test_another_tenant_cannot_read_run_or_cancel(
    api_client: APIClient, outsider_client: APIClient, tenant: TenantFixture
) -> None:
    created = api_client.post("/api/v1/agents", {"spec": TRIAGE_YAML}, format="json").json()
    run = api_client.post(
        f"/api/v1/agents/{created['id']}/runs", {"input": {"text": "x"}}, format="json"
    ).json()

    answers = [
        outsider_client.get(f"/api/v1/agents/{created['id']}"),
        outsider_client.post(f"/api/v1/agents/{created['id']}/runs", {"input": {"text": "x"}}, format="json"),
        outsider_client.get(f"/api/v1/runs/{run['id']}"),
        outsider_client.get(f"/api/v1/runs/{run['id']}/events"),
        outsider_client.post(f"/api/v1/runs/{run['id']}/cancel"),
        outsider_client.post(f"/api/v1/runs/{run['id']}/replay"),
    ]

    assert [answer.status_code for answer in answers] == [404] * 6
    assert outsider_client.get("/api/v1/agents").json()["data"] == []
    with tenant_context(tenant.tenant):
        assert Run.objects.get(pk=run["id"]).status == RunStatus.QUEUED
        assert Run.objects.count() == 1


def test_fragments_expand_and_overlays_override_by_environment() -> None:
    spec = compile_spec(
        {
            "name": "composed",
            "fragments": {"greet": [{"id": "hello", "kind": "llm", "prompt": "Say hello"}]},
            "steps": [{"use": "greet"}, {"id": "bye", "kind": "llm", "prompt": "Say bye"}],
            "overlays": {"prod": {"steps": {"hello": {"model": "sim-large"}}, "budget": {"max_steps": 3}}},
        }
    )

    assert [step["id"] for step in spec["steps"]] == ["hello", "bye"]
    prod = apply_overlay(spec, "prod")
    assert prod["steps"][0]["model"] == "sim-large"
    assert prod["budget"] == {"max_steps": 3}
    assert "model" not in apply_overlay(spec, "")["steps"][0]
    with pytest.raises(SpecError) as error:
        apply_overlay(spec, "staging")
    assert error.value.path == "environment"


def test_a_fragment_that_includes_itself_is_refused() -> None:
    with pytest.raises(SpecError) as error:
        compile_spec({"name": "loop", "fragments": {"a": [{"use": "a"}]}, "steps": [{"use": "a"}]})
    assert error.value.path == "fragments.a[0].use"


def test_cancelling_a_finished_run_changes_nothing(api_client: APIClient, tenant: TenantFixture) -> None:
    created = api_client.post("/api/v1/agents", {"spec": TRIAGE_YAML}, format="json").json()
    run = api_client.post(
        f"/api/v1/agents/{created['id']}/runs", {"input": {"text": "x"}}, format="json"
    ).json()
    api_client.post(f"/api/v1/runs/{run['id']}/cancel")

    again = api_client.post(f"/api/v1/runs/{run['id']}/cancel")

    assert again.status_code == 200
    assert again.json()["status"] == RunStatus.CANCELLED
    with tenant_context(tenant.tenant):
        assert RunEvent.objects.filter(run_id=run["id"]).count() == 3


def test_prompt_versions_are_frozen_into_a_run(api_client: APIClient, tenant: TenantFixture) -> None:
    first = api_client.post(
        "/api/v1/prompts", {"name": "classify", "template": "v1 {{ input.text }}"}, format="json"
    )
    second = api_client.post(
        "/api/v1/prompts", {"name": "classify", "template": "v2 {{ input.text }}"}, format="json"
    )
    latest = spec_with(steps=[{"id": "a", "kind": "llm", "prompt_ref": {"name": "classify"}}])
    pinned = spec_with(
        name="pinned", steps=[{"id": "a", "kind": "llm", "prompt_ref": {"name": "classify", "version": 1}}]
    )
    agents = [
        api_client.post("/api/v1/agents", {"spec": spec}, format="json").json() for spec in (latest, pinned)
    ]

    runs = [
        api_client.post(f"/api/v1/agents/{a['id']}/runs", {"input": {}}, format="json").json() for a in agents
    ]
    api_client.post("/api/v1/prompts", {"name": "classify", "template": "v3"}, format="json")

    assert [first.json()["version"], second.json()["version"]] == [1, 2]
    with tenant_context(tenant.tenant):
        steps = [Run.objects.get(pk=run["id"]).spec["steps"][0] for run in runs]
    assert [(s["prompt"], s["prompt_version"]["version"]) for s in steps] == [
        ("v2 {{ input.text }}", 2),
        ("v1 {{ input.text }}", 1),
    ]


def test_an_unknown_prompt_or_a_bad_template_is_a_400(api_client: APIClient) -> None:
    agent = api_client.post(
        "/api/v1/agents",
        {"spec": spec_with(steps=[{"id": "a", "kind": "llm", "prompt_ref": {"name": "ghost"}}])},
        format="json",
    ).json()

    run = api_client.post(f"/api/v1/agents/{agent['id']}/runs", {"input": {}}, format="json")
    bad = api_client.post("/api/v1/prompts", {"name": "broken", "template": "{{ oops "}, format="json")

    assert run.status_code == 400
    assert run.json()["error"]["param"] == "spec.steps[0].prompt_ref"
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "template"


def test_a_huge_constant_expression_is_not_a_server_error(api_client: APIClient) -> None:
    agent = api_client.post(
        "/api/v1/agents",
        {"spec": spec_with(name="power", steps=[{"id": "a", "kind": "llm", "prompt": "{{ 7 ** 10000 }}"}])},
        format="json",
    )
    prompt = api_client.post(
        "/api/v1/prompts", {"name": "power", "template": "{{ 7 ** 10000 }}"}, format="json"
    )

    assert agent.status_code == 201, agent.content  # refused when rendered, as a failed step
    assert prompt.status_code == 201, prompt.content


YAML_STEPS = "steps:\n  - id: a\n    kind: llm\n    prompt: hi\n"


@pytest.mark.parametrize(
    ("source", "param"),
    [
        ("name: dated\ncreated: 2024-01-01\n" + YAML_STEPS, "spec.created"),
        ("name: binary\nblob: !!binary aGVsbG8=\n" + YAML_STEPS, "spec.blob"),
        ("name: a-set\nthings: !!set {a, b}\n" + YAML_STEPS, "spec.things"),
        ("name: nan\nbudget: {max_cost_usd: .nan}\n" + YAML_STEPS, "spec.budget.max_cost_usd"),
        ("name: inf\ninput_schema: {default: -.inf}\n" + YAML_STEPS, "spec.input_schema.default"),
        ('name: nul\ndescription: "a\\0b"\n' + YAML_STEPS, "spec.description"),
        ("name: int-keys\nfragments: {1: []}\n" + YAML_STEPS, "spec.fragments"),
        ("name: deep\nx: " + "[" * 5000 + "]" * 5000 + "\n" + YAML_STEPS, "spec"),
        ("name: deep2\nx: " + "[" * 100 + "]" * 100 + "\n" + YAML_STEPS, "spec.x" + "[0]" * 64),
        (
            "name: bomb\ninput_schema:\n  a: &a [x, x, x, x, x, x, x, x, x]\n"
            + "  b: [*a, *a, *a, *a, *a, *a, *a, *a]\n"
            + YAML_STEPS,
            "spec",
        ),
    ],
)
def test_yaml_that_json_cannot_hold_is_a_400(api_client: APIClient, source: str, param: str) -> None:
    response = api_client.post("/api/v1/agents", {"spec": source}, format="json")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_spec", error
    assert error["param"] == param, error


def test_a_nul_character_in_a_json_spec_is_a_400(api_client: APIClient) -> None:
    spec = spec_with(steps=[{"id": "a", "kind": "llm", "prompt": "hi\u0000there"}])

    response = api_client.post("/api/v1/agents", {"spec": spec}, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == "spec.steps[0].prompt"


def test_fragments_cannot_expand_to_more_than_the_step_cap() -> None:
    use = lambda name: [{"use": name}] * 20  # noqa: E731
    spec = {
        "name": "fragment-bomb",
        "fragments": {
            "a": use("b"),
            "b": use("c"),
            "c": [{"id": "x", "kind": "llm", "prompt": "x"}] * 20,
        },
        "steps": use("a"),
    }

    with pytest.raises(SpecError) as error:
        compile_spec(spec)

    assert "more than 1000 steps" in error.value.message


def test_a_nul_character_in_a_run_input_is_a_400(api_client: APIClient) -> None:
    agent = api_client.post("/api/v1/agents", {"spec": spec_with(name="nul-input")}, format="json").json()

    response = api_client.post(
        f"/api/v1/agents/{agent['id']}/runs", {"input": {"text": ["ok", "a\u0000b"]}}, format="json"
    )

    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == "input.text[1]"


BEYOND_64_BITS = 10**30


@pytest.mark.parametrize(
    ("spec", "param"),
    [
        (
            spec_with(
                steps=[
                    {"id": "a", "kind": "llm", "prompt": "x", "output_schema": {"maxLength": BEYOND_64_BITS}}
                ]
            ),
            "spec.steps[0].output_schema.maxLength",
        ),
        (
            spec_with(input_schema={"type": "object", "properties": {"n": {"const": -BEYOND_64_BITS}}}),
            "spec.input_schema.properties.n.const",
        ),
        (spec_with(output={"n": BEYOND_64_BITS}), "spec.output.n"),
    ],
)
def test_an_integer_beyond_64_bits_in_a_yaml_spec_is_a_400(
    api_client: APIClient, spec: object, param: str
) -> None:
    """YAML keeps the integer whole (a JSON body's is a float by then, as the gateway
    reads it: aiaas/api_parsers.py), and JSON columns cannot hold it."""
    response = api_client.post("/api/v1/agents", {"spec": yaml.safe_dump(spec)}, format="json")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_spec", param)


def test_a_lone_surrogate_in_a_run_input_or_a_yaml_spec_is_a_400(api_client: APIClient) -> None:
    agent = api_client.post("/api/v1/agents", {"spec": spec_with(name="surrogates")}, format="json").json()
    yaml_spec = 'name: surrogate\nsteps:\n  - {id: a, kind: llm, prompt: "\\udc80"}\n'

    run = api_client.post(
        f"/api/v1/agents/{agent['id']}/runs",
        b'{"input": {"text": ["ok", "a\\ud800b"]}}',
        content_type="application/json",
    )
    created = api_client.post("/api/v1/agents", {"spec": yaml_spec}, format="json")

    assert run.status_code == 400, run.content
    assert run.json()["error"]["code"] == "parse_error"
    assert created.status_code == 400, created.content
    assert created.json()["error"]["param"] == "spec.steps[0].prompt"


def test_a_nul_character_in_a_prompt_is_a_400(api_client: APIClient) -> None:
    response = api_client.post("/api/v1/prompts", {"name": "nul", "template": "a\u0000b"}, format="json")

    assert response.status_code == 400, response.content
