"""The executor, in the test's thread against the simulated provider and a real tool
service: every step kind, budgets, sagas, and resumption after a crash."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from django.conf import settings
from django.core import mail
from django_tenants.utils import tenant_context

from agents import engine, events, selectors, services
from agents.models import Run, RunStatus
from agents.tests.factories import make_run, simple_spec
from tenants.services import create_api_key
from testing.agents import Ledger
from testing.tenants import TenantFixture


def output_of(run: Run) -> Any:
    return run.output


def execute(tenant: TenantFixture, run: Run) -> Run:
    with tenant_context(tenant.tenant):
        engine.execute_run(run.pk)
        run.refresh_from_db()
        return run


def event_types(tenant: TenantFixture, run: Run) -> list[tuple[str, str]]:
    with tenant_context(tenant.tenant):
        return list(run.events.order_by("seq").values_list("type", "step_id"))


TRIAGE: dict[str, Any] = {
    "name": "triage-flow",
    "input_schema": {"type": "object", "required": ["text", "items"]},
    "steps": [
        {
            "id": "classify",
            "kind": "llm",
            "model": "sim-small",
            "prompt": "Classify this ticket: {{ input.text }}",
            "output_schema": {
                "type": "object",
                "properties": {"label": {"type": "string"}},
                "required": ["label"],
            },
        },
        {
            "id": "check",
            "kind": "validate",
            "value": "{{ steps.classify.output }}",
            "schema": {"required": ["label"]},
        },
        {
            "id": "route",
            "kind": "condition",
            "if": "steps.classify.output.label | length > 0",
            "then": [
                {
                    "id": "summarise",
                    "kind": "llm",
                    "model": "sim-small",
                    "prompt": "Summarise {{ input.text }}",
                    "max_tokens": 3,
                }
            ],
            "else": [{"id": "never", "kind": "llm", "prompt": "unreachable"}],
        },
        {
            "id": "each",
            "kind": "map",
            "over": "{{ input.items }}",
            "step": {
                "id": "tag",
                "kind": "llm",
                "model": "sim-small",
                "prompt": "Tag {{ item }} ({{ index }})",
                "max_tokens": 2,
            },
        },
    ],
    "output": {
        "label": "{{ steps.classify.output.label }}",
        "tags": "{{ steps.each.output }}",
        "summary": "{{ steps.summarise.output }}",
    },
}


def test_a_multi_step_agent_runs_every_step_kind(tenant: TenantFixture, simulator: str) -> None:
    run = make_run(tenant, TRIAGE, {"text": "printer on fire", "items": ["a", "b"]})

    run = execute(tenant, run)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert isinstance(output_of(run)["label"], str)
    assert output_of(run)["label"]
    assert len(output_of(run)["summary"].split()) == 3
    assert [len(tag.split()) for tag in output_of(run)["tags"]] == [2, 2]
    steps = [(t, s) for t, s in event_types(tenant, run) if t.startswith("step.")]
    assert steps == [
        ("step.started", "classify"), ("step.succeeded", "classify"),
        ("step.started", "check"), ("step.succeeded", "check"),
        ("step.started", "route"),
        ("step.started", "summarise"), ("step.succeeded", "summarise"),
        ("step.succeeded", "route"),
        ("step.started", "each"),
        ("step.started", "tag[0]"), ("step.succeeded", "tag[0]"),
        ("step.started", "tag[1]"), ("step.succeeded", "tag[1]"),
        ("step.succeeded", "each"),
    ]  # fmt: skip
    assert run.steps_executed == 7
    assert run.cost_usd > 0
    assert run.prompt_tokens > 0
    assert run.completion_tokens == 64 + 3 + 2 + 2  # the label's answer, the summary, two tags
    assert [t for t, _ in event_types(tenant, run)][-1] == "run.succeeded"


def test_usage_of_llm_steps_is_recorded_per_call(tenant: TenantFixture, simulator: str) -> None:
    run = execute(tenant, make_run(tenant, TRIAGE, {"text": "x", "items": ["a"]}))

    with tenant_context(tenant.tenant):
        usage = list(run.events.filter(type=events.LLM_USAGE).values_list("data", flat=True))
    assert [u["model"] for u in usage] == ["sim-small"] * 3
    assert len({u["request_id"] for u in usage}) == 3
    assert sum(u["completion_tokens"] for u in usage) == run.completion_tokens


def test_validate_retries_the_llm_step_a_bounded_number_of_times(
    tenant: TenantFixture, simulator: str
) -> None:
    spec = {
        "name": "never-valid",
        "steps": [
            {"id": "draft", "kind": "llm", "model": "sim-small", "prompt": "Write", "max_tokens": 2},
            {
                "id": "check",
                "kind": "validate",
                "value": "{{ steps.draft.output }}",
                "schema": {"type": "integer"},
                "retry": {"step": "draft", "max_attempts": 3},
            },
        ],
    }

    run = execute(tenant, make_run(tenant, spec))

    assert run.status == RunStatus.FAILED
    assert "validation failed at (root): " in run.error
    assert "after 3 attempts of draft" in run.error
    assert event_types(tenant, run).count(("step.started", "draft")) == 3


def test_validate_retry_succeeds_when_the_new_answer_validates(tenant: TenantFixture, simulator: str) -> None:
    first = execute(
        tenant,
        make_run(
            tenant,
            {
                "name": "probe",
                "steps": [
                    {"id": "draft", "kind": "llm", "model": "sim-small", "prompt": "Write", "max_tokens": 2}
                ],
            },
        ),
    )
    spec = {
        "name": "second-time-lucky",
        "steps": [
            {"id": "draft", "kind": "llm", "model": "sim-small", "prompt": "Write", "max_tokens": 2},
            {
                "id": "check",
                "kind": "validate",
                "value": "{{ steps.draft.output }}",
                "schema": {"not": {"const": first.output}},
                "retry": {"step": "draft"},
            },
        ],
    }

    run = execute(tenant, make_run(tenant, spec))

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output != first.output
    assert event_types(tenant, run).count(("step.started", "draft")) == 2


def test_a_step_budget_stops_the_run(tenant: TenantFixture, simulator: str) -> None:
    spec = {**TRIAGE, "name": "tight", "budget": {"max_steps": 2}}

    run = execute(tenant, make_run(tenant, spec, {"text": "x", "items": []}))

    assert run.status == RunStatus.FAILED
    assert run.error == "route: the run's budget of 2 steps is spent"


def test_a_cost_budget_stops_the_next_llm_step(tenant: TenantFixture, simulator: str) -> None:
    spec = {**TRIAGE, "name": "cheap", "budget": {"max_cost_usd": 0.0000001}}

    run = execute(tenant, make_run(tenant, spec, {"text": "x", "items": []}))

    assert run.status == RunStatus.FAILED
    assert run.error.startswith("summarise: the run's cost budget")


def test_a_time_budget_stops_the_run_and_compensates_what_it_did(
    tenant: TenantFixture, simulator: str, tools: Ledger
) -> None:
    tools.faults["hotel"] = "slow"  # the first step outlasts the whole budget
    spec = {**SAGA, "name": "hasty", "budget": {"max_seconds": 0.5}}

    run = execute(tenant, make_run(tenant, spec))

    assert run.status == RunStatus.COMPENSATED, run.error
    assert run.error == "flight: the run's time budget of 0.5s is spent"
    assert tools.in_force() == []
    assert dict(tools.effects) == {"hotel": 1}


def test_templates_cannot_reach_python_internals(tenant: TenantFixture, simulator: str) -> None:
    spec = {
        "name": "escape",
        "steps": [{"id": "a", "kind": "llm", "prompt": "{{ input.__class__.__mro__ }}"}],
    }

    run = execute(tenant, make_run(tenant, spec))

    assert run.status == RunStatus.FAILED
    assert "unsafe" in run.error or "__class__" in run.error


def test_a_finished_run_delivered_again_changes_nothing(tenant: TenantFixture, simulator: str) -> None:
    run = execute(tenant, make_run(tenant))
    before = event_types(tenant, run)

    again = execute(tenant, run)

    assert again.status == RunStatus.SUCCEEDED
    assert event_types(tenant, run) == before


class Crash(BaseException):
    """The worker dies here (not an Exception: nothing may catch it)."""


def crash_on(monkeypatch: pytest.MonkeyPatch, event_type: str, step_id: str) -> None:
    """Kill the 'worker' the first time `event_type` of `step_id` is about to be recorded."""
    real_append = events.append
    fired: list[bool] = []

    def append(run: Run, type: str, **kwargs: Any) -> Any:
        if type == event_type and kwargs.get("step_id") == step_id and not fired:
            fired.append(True)
            raise Crash
        return real_append(run, type, **kwargs)

    monkeypatch.setattr(engine, "append", append)


SAGA: dict[str, Any] = {
    "name": "booking",
    "steps": [
        {"id": "hotel", "kind": "tool", "tool": "reserve", "input": {"resource": "hotel"}},
        {"id": "flight", "kind": "tool", "tool": "reserve", "input": {"resource": "flight"}},
        {"id": "note", "kind": "llm", "model": "sim-small", "prompt": "Confirm", "max_tokens": 2},
        {"id": "car", "kind": "tool", "tool": "reserve", "input": {"resource": "car"}},
    ],
}


def test_a_saga_without_failures_completes_with_every_effect_once(
    tenant: TenantFixture, simulator: str, tools: Ledger
) -> None:
    run = execute(tenant, make_run(tenant, SAGA))

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert tools.in_force() == ["car", "flight", "hotel"]
    assert dict(tools.effects) == {"hotel": 1, "flight": 1, "car": 1}


@pytest.mark.parametrize("resource", ["hotel", "flight", "car"])
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_failure_at_any_step_is_compensated_with_no_duplicate_effect(
    tenant: TenantFixture, simulator: str, tools: Ledger, resource: str, when: str
) -> None:
    tools.faults[resource] = when

    run = execute(tenant, make_run(tenant, SAGA))

    assert run.status == RunStatus.COMPENSATED, run.error
    assert tools.in_force() == []
    assert all(count == 1 for count in tools.effects.values()), tools.effects
    assert tools.effects[resource] == (1 if when == "after" else 0)
    compensated = [s for t, s in event_types(tenant, run) if t == "compensation.succeeded"]
    order = ["car", "flight", "hotel"]
    assert compensated == order[order.index(resource) :]


def test_an_llm_failure_after_side_effects_compensates_them(
    tenant: TenantFixture, simulator: str, tools: Ledger
) -> None:
    spec = {
        **SAGA,
        "name": "booking-llm",
        "steps": [*SAGA["steps"][:2], {"id": "note", "kind": "llm", "model": "no-such-model", "prompt": "x"}],
    }

    run = execute(tenant, make_run(tenant, spec))

    assert run.status == RunStatus.COMPENSATED
    assert run.error.startswith("note: model_not_found")
    assert tools.in_force() == []


def test_a_failed_compensation_ends_compensation_failed(
    tenant: TenantFixture, simulator: str, tools: Ledger
) -> None:
    tools.faults["car"] = "before"
    tools.faults["undo:hotel"] = "before"

    run = execute(tenant, make_run(tenant, SAGA))

    assert run.status == RunStatus.COMPENSATION_FAILED
    assert tools.in_force() == ["hotel"]


@pytest.mark.parametrize(
    ("event_type", "step_id"),
    [
        ("tool.call.requested", "flight"),  # killed before the call
        ("tool.call.succeeded", "flight"),  # killed after the effect, before recording it
        ("step.succeeded", "flight"),
        ("step.started", "note"),
        ("llm.usage", "note"),
        ("step.succeeded", "car"),
    ],
)
def test_a_worker_killed_mid_run_resumes_without_repeating_an_effect(
    tenant: TenantFixture,
    simulator: str,
    tools: Ledger,
    monkeypatch: pytest.MonkeyPatch,
    event_type: str,
    step_id: str,
) -> None:
    run = make_run(tenant, SAGA)
    crash_on(monkeypatch, event_type, step_id)
    with pytest.raises(Crash):
        execute(tenant, run)

    run = execute(tenant, run)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert dict(tools.effects) == {"hotel": 1, "flight": 1, "car": 1}
    # Real calls, not de-duplicated effects: a call is made again only when the crash
    # came before its outcome was recorded (then the idempotency key makes it harmless).
    again = 2 if event_type == "tool.call.succeeded" else 1
    assert dict(tools.calls) == {"hotel": 1, "flight": again if step_id == "flight" else 1, "car": 1}
    types = event_types(tenant, run)
    assert types.count(("step.succeeded", "hotel")) == 1
    assert ("run.resumed", "") in types


def test_a_worker_killed_after_a_failed_call_is_recorded_does_not_call_again(
    tenant: TenantFixture, simulator: str, tools: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools.faults["car"] = "before"
    run = make_run(tenant, SAGA)
    crash_on(monkeypatch, "step.failed", "car")
    with pytest.raises(Crash):
        execute(tenant, run)
    calls_before = tools.calls["car"]

    run = execute(tenant, run)

    assert run.status == RunStatus.COMPENSATED, run.error
    assert calls_before >= 1
    assert tools.calls["car"] == calls_before
    assert "car: reserve answered 500" in run.error
    assert tools.in_force() == []


def test_a_run_cancelled_before_a_step_compensates_and_ends_cancelled(
    tenant: TenantFixture, simulator: str, tools: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_run(tenant, SAGA)
    crash_on(monkeypatch, "step.started", "note")
    with pytest.raises(Crash):
        execute(tenant, run)
    with tenant_context(tenant.tenant):
        events.append(run, events.RUN_CANCEL_REQUESTED, key="run.cancel_requested")

    run = execute(tenant, run)

    assert run.status == RunStatus.CANCELLED
    assert tools.in_force() == []


def test_an_unexpected_error_in_a_step_fails_the_run_and_compensates(
    tenant: TenantFixture, simulator: str, tools: Ledger
) -> None:
    spec = {
        "name": "divider",
        "steps": [
            SAGA["steps"][0],
            {"id": "ratio", "kind": "llm", "model": "sim-small", "prompt": "{{ input.a / input.b }}"},
        ],
    }

    run = execute(tenant, make_run(tenant, spec, run_input={"a": 1, "b": 0}))

    assert run.status == RunStatus.COMPENSATED, (run.status, run.error)
    assert run.error.startswith("ratio: ZeroDivisionError"), run.error
    assert ("step.failed", "ratio") in event_types(tenant, run)
    assert tools.in_force() == []


def test_an_unexpected_error_outside_a_step_fails_the_run(
    tenant: TenantFixture, simulator: str, tools: Ledger
) -> None:
    spec = {**simple_spec(), "output": "{{ input.a / input.b }}"}

    run = execute(tenant, make_run(tenant, spec, run_input={"a": 1, "b": 0, "text": "x"}))

    assert run.status == RunStatus.FAILED, (run.status, run.error)
    assert "ZeroDivisionError" in run.error


def test_an_email_backend_failure_is_a_failed_call_whose_effect_is_unknown(
    tenant: TenantFixture, simulator: str, tools: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agents.tools import invoke

    def broken(tool_input: Any, idempotency_key: str) -> Any:
        raise OSError("connection refused by the SMTP server")

    monkeypatch.setattr(invoke, "send_email", broken)
    spec = {
        "name": "mailer-broken",
        "steps": [
            {
                "id": "notify",
                "kind": "tool",
                "tool": "email",
                "input": {"to": "ops@example.com", "subject": "s", "body": "b"},
            }
        ],
    }

    run = execute(tenant, make_run(tenant, spec))

    assert run.status in (RunStatus.COMPENSATED, RunStatus.COMPENSATION_FAILED, RunStatus.FAILED), run.status
    assert "OSError: connection refused" in run.error
    with tenant_context(tenant.tenant):
        failed = run.events.get(type="tool.call.failed")
    assert failed.data["applied"] == "unknown"


def test_the_email_tool_sends_through_django_once_per_call(
    tenant: TenantFixture, simulator: str, tools: Ledger
) -> None:
    spec = {
        "name": "mailer",
        "steps": [
            {
                "id": "notify",
                "kind": "tool",
                "tool": "email",
                "input": {"to": "ops@example.com", "subject": "Run {{ run.id }}", "body": "done"},
            }
        ],
    }
    mail.outbox.clear()

    run = execute(tenant, make_run(tenant, spec))

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert [(m.to, m.subject) for m in mail.outbox] == [(["ops@example.com"], f"Run {run.pk}")]
    assert mail.outbox[0].extra_headers["Message-ID"] == output_of(run)["message_id"]


def test_the_http_tool_refuses_private_targets_unless_allow_listed(
    tenant: TenantFixture, simulator: str, tools: Ledger, tool_service: str, settings: Any
) -> None:
    spec = {
        "name": "fetcher",
        "steps": [{"id": "get", "kind": "tool", "tool": "http", "input": {"url": f"{tool_service}/echo"}}],
    }
    allowed = execute(tenant, make_run(tenant, spec))
    settings.AGENT_TOOL_ALLOWED_HOSTS = []
    spec_localhost = {
        "name": "fetcher-2",
        "steps": [
            {
                "id": "get",
                "kind": "tool",
                "tool": "http",
                "input": {"url": tool_service.replace("127.0.0.1", "localhost") + "/echo"},
            }
        ],
    }
    refused = execute(tenant, make_run(tenant, spec_localhost))
    spec_metadata = {
        "name": "fetcher-3",
        "steps": [
            {
                "id": "get",
                "kind": "tool",
                "tool": "http",
                "input": {"url": "http://169.254.169.254/latest/meta-data"},
            }
        ],
    }
    metadata = execute(tenant, make_run(tenant, spec_metadata))

    assert allowed.status == RunStatus.SUCCEEDED, allowed.error
    assert output_of(allowed)["body"]["idempotency_key"].endswith(f":run-{allowed.pk}:get")
    assert refused.status == RunStatus.FAILED
    assert "refused target: localhost resolves to a non-public address" in refused.error
    assert metadata.status == RunStatus.FAILED
    assert "refused target: 169.254.169.254 is not a public address" in metadata.error


@pytest.mark.parametrize(
    "host",
    [
        "\u2460\u2461\u2466.0.0.1",  # circled digits: yarl normalises them to 127.0.0.1
        "\uff11\uff12\uff17.\uff10.\uff10.\uff11",  # fullwidth digits
        "[::ffff:127.0.0.1]",  # IPv4-mapped
        "[::127.0.0.1]",  # IPv4-compatible
        "[64:ff9b::7f00:1]",  # NAT64
        "[2002:7f00:1::1]",  # 6to4
    ],
)
def test_the_http_tool_refuses_private_targets_written_in_other_forms(
    tenant: TenantFixture, simulator: str, tools: Ledger, tool_service: str, settings: Any, host: str
) -> None:
    settings.AGENT_TOOL_ALLOWED_HOSTS = []
    port = tool_service.rsplit(":", 1)[1]
    spec = {
        "name": f"fetcher-{sum(map(ord, host))}",
        "steps": [
            {"id": "get", "kind": "tool", "tool": "http", "input": {"url": f"http://{host}:{port}/echo"}}
        ],
    }

    run = execute(tenant, make_run(tenant, spec))

    assert run.status == RunStatus.FAILED, run.output
    assert "is not a public address" in run.error, run.error


@pytest.mark.parametrize(
    "address", ["64:ff9b::a00:1", "64:ff9b:1::1", "2002:a00:1::1", "::ffff:8.8.8.8", "::8.8.8.8", "2001::1"]
)
def test_ipv6_forms_that_embed_an_ipv4_address_are_not_public(address: str) -> None:
    from aiaas.outbound import is_public

    assert not is_public(address)
    assert is_public("2606:4700:4700::1111")


def test_a_replay_freezes_models_and_takes_tool_outputs_from_the_record(
    tenant: TenantFixture, simulator: str, tools: Ledger
) -> None:
    spec = {**SAGA, "name": "replayable", "steps": [*SAGA["steps"][:3]]}
    spec["steps"][2] = {**spec["steps"][2], "model": "auto"}
    original = execute(tenant, make_run(tenant, spec))
    with tenant_context(tenant.tenant):
        replay = services.replay_run(original, tenant.provisioned.issued_key.api_key)

    replay = execute(tenant, replay)

    assert original.status == replay.status == RunStatus.SUCCEEDED
    assert dict(tools.calls) == {"hotel": 1, "flight": 1}  # the replay called no tool
    with tenant_context(tenant.tenant):
        models = (engine.recorded_models(original.pk), engine.recorded_models(replay.pk))
        diff = selectors.replay_diff(original, replay)
    assert models == ({"note": "sim-small"}, {"note": "sim-small"})
    assert [(row["step_id"], row["same"]) for row in diff] == [
        ("hotel", True), ("flight", True), ("note", True), ("(output)", True)
    ]  # fmt: skip


def usage_stream_entries(request_ids: set[str]) -> dict[str, dict[str, str]]:
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    with client:
        entries: list[tuple[str, dict[str, str]]] = client.xrange(settings.USAGE_STREAM)  # type: ignore[assignment]
    return {fields["request_id"]: fields for _, fields in entries if fields.get("request_id") in request_ids}


def test_llm_calls_reach_the_usage_ledger_queue_under_the_runs_key(
    tenant: TenantFixture, simulator: str
) -> None:
    run = execute(tenant, make_run(tenant, TRIAGE, {"text": "x", "items": ["a"]}))
    with tenant_context(tenant.tenant):
        usage = {
            e["request_id"]: e
            for e in run.events.filter(type=events.LLM_USAGE).values_list("data", flat=True)
        }

    queued = usage_stream_entries(set(usage))

    assert set(queued) == set(usage)
    for request_id, entry in queued.items():
        assert entry["api_key_id"] == str(tenant.provisioned.issued_key.api_key.pk)
        assert entry["tenant_id"] == str(tenant.tenant.pk)
        assert entry["model"] == usage[request_id]["model"]
        assert int(entry["completion_tokens"]) == usage[request_id]["completion_tokens"]


def test_an_llm_step_is_held_to_the_keys_budget(tenant: TenantFixture, simulator: str) -> None:
    with tenant_context(tenant.tenant):
        issued = create_api_key(tenant.tenant, name="tiny", scopes=["inference"], monthly_token_budget=10)
        agent = services.create_agent(simple_spec("over-budget"))
        run = services.start_run(agent, {"text": "hello"}, issued.api_key)

    run = execute(tenant, run)

    assert run.status == RunStatus.FAILED
    assert run.error == "answer: key_token_budget: This API key's monthly token budget has been reached."
    assert run.cost_usd == 0
