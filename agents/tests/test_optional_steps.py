"""Steps marked `optional` are skipped while the degrade level skips them, and run otherwise."""

from __future__ import annotations

from typing import Any, cast

import pytest
from django_tenants.utils import tenant_context

from agents import engine
from agents.models import Run, RunStatus
from agents.spec import SpecError, compile_spec
from agents.tests.factories import make_run
from capacity.levels import Level
from testing.capacity import held_at
from testing.tenants import TenantFixture

SPEC: dict[str, Any] = {
    "name": "with-an-optional-step",
    "steps": [
        {
            "id": "answer",
            "kind": "llm",
            "model": "sim-small",
            "prompt": "Answer {{ input.text }}",
            "max_tokens": 3,
        },
        {
            "id": "polish",
            "kind": "llm",
            "model": "sim-small",
            "prompt": "Polish {{ steps.answer.output }}",
            "max_tokens": 2,
            "optional": True,
        },
    ],
    "output": {"answer": "{{ steps.answer.output }}", "polished": "{{ steps.polish.output }}"},
}


def executed(tenant: TenantFixture) -> tuple[Run, list[tuple[str, str, dict[str, Any]]]]:
    run = make_run(tenant, SPEC)
    with tenant_context(tenant.tenant):
        engine.execute_run(run.pk)
        run.refresh_from_db()
        return run, list(run.events.order_by("seq").values_list("type", "step_id", "data"))


def test_an_optional_step_is_skipped_at_a_level_that_skips_them(
    tenant: TenantFixture, simulator: str
) -> None:
    with held_at(Level.DEGRADED, skip_optional_steps=True):
        run, events = executed(tenant)

    assert run.status == RunStatus.SUCCEEDED, run.error
    output = cast(dict[str, Any], run.output)
    assert len(output["answer"].split()) == 3
    assert output["polished"] is None
    assert run.steps_executed == 1
    skipped = [(step, data) for kind, step, data in events if kind == "step.skipped"]
    assert skipped == [("polish", {"reason": "optional step skipped: the platform is degraded"})]
    assert not [step for kind, step, _ in events if kind == "step.started" and step == "polish"]


def test_an_optional_step_runs_at_normal(tenant: TenantFixture, simulator: str) -> None:
    run, events = executed(tenant)

    assert run.status == RunStatus.SUCCEEDED, run.error
    output = cast(dict[str, Any], run.output)
    assert len(output["polished"].split()) == 2
    assert run.steps_executed == 2
    assert "step.skipped" not in [kind for kind, _, _ in events]


def test_optional_must_be_a_boolean() -> None:
    bad = {**SPEC, "steps": [{**SPEC["steps"][0], "optional": "yes"}]}

    with pytest.raises(SpecError) as raised:
        compile_spec(bad)

    assert raised.value.path == "steps[0].optional"
    assert raised.value.message == "'yes' is not of type 'boolean'"
