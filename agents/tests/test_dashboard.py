"""The dashboard's agents pages on the tenant's host: the spec editor shows the
validation message, runs start and their events can be followed, and nothing
of one tenant shows on another's host."""

from __future__ import annotations

import pytest
from django_tenants.utils import tenant_context

from accounts.models import Role
from accounts.tests.factories import browser_for, make_user
from agents.models import Agent, Run, RunStatus
from agents.tests.factories import make_agent, make_run, simple_spec
from testing.tenants import TenantFixture

AGENTS = "/dashboard/agents/"


def test_the_editor_shows_where_the_spec_is_wrong_and_saves_nothing(tenant: TenantFixture) -> None:
    browser = tenant.web_client()

    response = browser.post(
        f"{AGENTS}new/", {"spec": "name: broken\nsteps:\n  - id: a\n    kind: teleport\n"}
    )

    assert response.status_code == 200
    assert "steps[0].kind: &#x27;teleport&#x27; is not one of" in response.content.decode()
    with tenant_context(tenant.tenant):
        assert Agent.objects.count() == 0


def test_saving_a_spec_creates_then_versions_the_agent(tenant: TenantFixture) -> None:
    browser = tenant.web_client()
    yaml = "name: helper\nsteps:\n  - id: a\n    kind: llm\n    prompt: hi\n"

    created = browser.post(f"{AGENTS}new/", {"spec": yaml})
    with tenant_context(tenant.tenant):
        agent = Agent.objects.get(name="helper")
    edited = browser.post(f"{AGENTS}{agent.pk}/", {"spec": yaml.replace("hi", "hello")})

    assert created["Location"] == f"{AGENTS}{agent.pk}/"
    assert edited.status_code == 302
    with tenant_context(tenant.tenant):
        agent.refresh_from_db()
        assert agent.version == 2
    page = browser.get(f"{AGENTS}{agent.pk}/").content.decode()
    assert "version 2" in page
    assert "prompt: hello" in page


def test_starting_a_run_from_the_dashboard_attributes_it_to_the_chosen_key(tenant: TenantFixture) -> None:
    agent = make_agent(tenant, simple_spec("dash-run"))
    key = tenant.provisioned.issued_key.api_key

    response = tenant.web_client().post(
        f"{AGENTS}{agent.pk}/runs/", {"input": '{"text": "hi"}', "api_key": key.pk, "environment": ""}
    )

    with tenant_context(tenant.tenant):
        run = Run.objects.get(agent=agent)
    assert response["Location"] == f"{AGENTS}runs/{run.pk}/"
    assert (run.status, run.api_key_id, run.input) == (RunStatus.QUEUED, key.pk, {"text": "hi"})


@pytest.mark.parametrize("text", ["{not json", "[" * 5000 + "]" * 5000])
def test_invalid_run_input_is_shown_on_the_form(tenant: TenantFixture, text: str) -> None:
    agent = make_agent(tenant, simple_spec("dash-bad-input"))

    response = tenant.web_client().post(
        f"{AGENTS}{agent.pk}/runs/",
        {"input": text, "api_key": tenant.provisioned.issued_key.api_key.pk},
    )

    assert response.status_code == 400
    assert "Not valid JSON" in response.content.decode()


def test_the_run_page_lists_events_and_serves_new_ones(tenant: TenantFixture) -> None:
    run = make_run(tenant, simple_spec("dash-events"))
    browser = tenant.web_client()

    page = browser.get(f"{AGENTS}runs/{run.pk}/")
    after_first = browser.get(f"{AGENTS}runs/{run.pk}/events/?after=1").json()
    everything = browser.get(f"{AGENTS}runs/{run.pk}/events/").json()

    assert page.status_code == 200
    assert "run.queued" in page.content.decode()
    assert after_first == {"status": "queued", "finished": False, "events": []}
    assert [e["type"] for e in everything["events"]] == ["run.queued"]


def test_a_compensation_failure_is_an_alert_on_the_agents_page(tenant: TenantFixture) -> None:
    run = make_run(tenant, simple_spec("dash-alert"))
    with tenant_context(tenant.tenant):
        Run.objects.filter(pk=run.pk).update(status=RunStatus.COMPENSATION_FAILED, error="undo of car failed")

    page = tenant.web_client().get(AGENTS).content.decode()

    assert "Compensation failed" in page
    assert "undo of car failed" in page


def test_members_can_look_but_not_change(tenant: TenantFixture) -> None:
    agent = make_agent(tenant, simple_spec("dash-member"))
    member = browser_for(tenant, make_user(tenant, email="dev@alpha.example", role=Role.MEMBER))

    assert member.get(f"{AGENTS}{agent.pk}/").status_code == 200
    assert member.post(f"{AGENTS}{agent.pk}/delete/").status_code == 403
    with tenant_context(tenant.tenant):
        assert Agent.objects.filter(pk=agent.pk).exists()


def test_another_tenants_agents_and_runs_are_not_found_on_its_host(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    run = make_run(tenant, simple_spec("dash-private"))
    outsider = other_tenant.web_client()

    assert outsider.get(f"{AGENTS}{run.agent_id}/").status_code == 404
    assert outsider.get(f"{AGENTS}runs/{run.pk}/").status_code == 404
    assert outsider.get(f"{AGENTS}runs/{run.pk}/events/").status_code == 404
    assert outsider.post(f"{AGENTS}runs/{run.pk}/cancel/").status_code == 404
    assert "dash-private" not in outsider.get(AGENTS).content.decode()


def test_replaying_a_run_that_has_not_finished_is_refused_with_a_message(tenant: TenantFixture) -> None:
    run = make_run(tenant, simple_spec("dash-replay"))
    browser = tenant.web_client()

    response = browser.post(f"{AGENTS}runs/{run.pk}/replay/", follow=True)

    assert response.redirect_chain == [(f"{AGENTS}runs/{run.pk}/", 302)]
    assert "only a finished run can be replayed" in response.content.decode()
    with tenant_context(tenant.tenant):
        assert Run.objects.count() == 1
