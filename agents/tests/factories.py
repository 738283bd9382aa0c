"""Agents and runs, created in a tenant's schema through the services."""

from __future__ import annotations

import itertools
from typing import Any

from django_tenants.utils import tenant_context

from agents import services
from agents.models import Agent, Run
from registry.models import Entry
from registry.tests.factories import create_prompt
from testing.tenants import TenantFixture

_names = itertools.count(1)


def simple_spec(name: str | None = None, **changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name or f"agent-{next(_names)}",
        "steps": [
            {"id": "answer", "kind": "llm", "model": "sim-small", "prompt": "Answer: {{ input.text }}"}
        ],
    }
    return {**spec, **changes}


def make_agent(tenant: TenantFixture, spec: dict[str, Any] | None = None) -> Agent:
    with tenant_context(tenant.tenant):
        return services.create_agent(spec or simple_spec())


def make_run(tenant: TenantFixture, spec: dict[str, Any] | None = None, run_input: Any = None) -> Run:
    """A queued run (not sent to a worker: tests execute it themselves)."""
    agent = make_agent(tenant, spec)
    with tenant_context(tenant.tenant):
        return services.start_run(
            agent,
            {"text": "hello"} if run_input is None else run_input,
            tenant.provisioned.issued_key.api_key,
        )


def make_prompt(tenant: TenantFixture) -> Entry:
    with tenant_context(tenant.tenant):
        return create_prompt(f"prompt-{next(_names)}", "Answer: {{ input.text }}")
