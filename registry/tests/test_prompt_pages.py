"""The prompt pages on the tenant's host: list, new version from the editor,
rendered preview, diff, history, promotion and rollback by owners, and nothing
of one tenant on another's host."""

from __future__ import annotations

import pytest
from django_tenants.utils import tenant_context

from accounts.models import Role
from accounts.tests.factories import browser_for, make_user
from registry.models import AuditEvent, Entry, Kind, State
from registry.tests.factories import create_prompt
from testing.tenants import TenantFixture

PROMPTS = "/dashboard/prompts/"


def states(tenant: TenantFixture, name: str) -> list[tuple[int, str]]:
    with tenant_context(tenant.tenant):
        return list(
            Entry.objects.filter(kind=Kind.PROMPT, name=name)
            .order_by("version")
            .values_list("version", "state")
        )


def test_the_list_shows_each_prompt_with_its_latest_and_production_versions(tenant: TenantFixture) -> None:
    with tenant_context(tenant.tenant):
        create_prompt("greet", "Hi {{ who }}")
        create_prompt("greet", "Hello {{ who }}")

    page = tenant.web_client().get(PROMPTS)

    assert page.status_code == 200
    body = page.content.decode()
    assert f'href="{PROMPTS}greet/"' in body
    assert "<td>2 <span" in body


def test_the_editor_creates_a_prompt_then_saves_new_versions(tenant: TenantFixture) -> None:
    browser = tenant.web_client()

    created = browser.post(f"{PROMPTS}new/", {"name": "triage", "template": "Classify {{ input.text }}"})
    edited = browser.post(f"{PROMPTS}triage/", {"template": "Classify briefly {{ input.text }}"})
    broken = browser.post(f"{PROMPTS}triage/", {"template": "{{ oops "})

    assert created["Location"] == f"{PROMPTS}triage/"
    assert edited.status_code == 302
    assert broken.status_code == 200
    assert "Invalid template" in broken.content.decode()
    assert states(tenant, "triage") == [(1, "draft"), (2, "draft")]
    page = browser.get(f"{PROMPTS}triage/").content.decode()
    assert "Classify briefly {{ input.text }}" in page  # the editor starts from the latest version
    assert tenant.owner_email in page  # the history names who saved each version


def test_a_version_renders_with_variables_and_says_which_is_missing(tenant: TenantFixture) -> None:
    with tenant_context(tenant.tenant):
        create_prompt("greet", "Hello {{ who }} <b>{{ mood }}</b>")
    browser = tenant.web_client()

    rendered = browser.post(
        f"{PROMPTS}greet/v1/", {"variables": '{"who": "<script>x</script>", "mood": "glad"}'}
    )
    missing = browser.post(f"{PROMPTS}greet/v1/", {"variables": '{"who": "Ada"}'})
    not_json = browser.post(f"{PROMPTS}greet/v1/", {"variables": "{nope"})

    assert rendered.status_code == 200
    assert "Hello &lt;script&gt;x&lt;/script&gt; &lt;b&gt;glad&lt;/b&gt;" in rendered.content.decode()
    assert "<script>x</script>" not in rendered.content.decode()
    assert missing.status_code == 400
    assert "&#x27;mood&#x27; is undefined" in missing.content.decode()
    assert not_json.status_code == 400
    assert "Not JSON" in not_json.content.decode()


def test_the_diff_compares_two_versions_side_by_side_or_unified_escaped(tenant: TenantFixture) -> None:
    with tenant_context(tenant.tenant):
        create_prompt("greet", "Hello {{ who }}\nBye")
        create_prompt("greet", "Hello {{ who }}\n<img src=x onerror=alert(1)>\nBye")
    browser = tenant.web_client()

    side = browser.get(f"{PROMPTS}greet/diff/").content.decode()
    unified = browser.get(f"{PROMPTS}greet/diff/?from=1&to=2&view=unified").content.decode()

    assert (
        '<tr class="diff-insert"><td class="muted"></td><td><code></code></td><td class="muted">2</td>'
        in side
    )
    assert "&lt;img src=x onerror=alert(1)&gt;" in side
    assert '<span class="diff-insert">+&lt;img src=x onerror=alert(1)&gt;</span>' in unified
    assert '<span class="diff-file">--- greet v1</span>' in unified
    assert "<img src=x" not in side + unified
    assert browser.get(f"{PROMPTS}greet/diff/?from=9").status_code == 404


def test_an_owner_promotes_and_rolls_back_and_the_history_shows_it(tenant: TenantFixture) -> None:
    with tenant_context(tenant.tenant):
        create_prompt("greet", "Hi {{ who }}")
        create_prompt("greet", "Hello {{ who }}")
    browser = tenant.web_client()

    for version in (1, 1, 2, 2):
        assert browser.post(f"{PROMPTS}greet/v{version}/promote/").status_code == 302
    assert states(tenant, "greet") == [(1, State.SUPERSEDED), (2, State.PRODUCTION)]
    browser.post(f"{PROMPTS}greet/rollback/")
    refused = browser.post(f"{PROMPTS}greet/rollback/", follow=True)

    assert states(tenant, "greet") == [(1, State.PRODUCTION), (2, State.ROLLED_BACK)]
    assert "no earlier production version" in refused.content.decode()
    with tenant_context(tenant.tenant):
        rolled = AuditEvent.objects.filter(action="rolled_back", entry__name="greet")
        assert {(e.entry.version, e.actor) for e in rolled} == {
            (1, tenant.owner_email),
            (2, tenant.owner_email),
        }
    history = browser.get(f"{PROMPTS}greet/").content.decode()
    assert "production → rolled_back" in history


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MEMBER])
def test_only_owners_promote_or_roll_back(tenant: TenantFixture, role: Role) -> None:
    with tenant_context(tenant.tenant):
        create_prompt("greet", "Hi {{ who }}")
    browser = browser_for(tenant, make_user(tenant, role=role))

    assert browser.post(f"{PROMPTS}greet/v1/promote/").status_code == 403
    assert browser.post(f"{PROMPTS}greet/rollback/").status_code == 403
    assert states(tenant, "greet") == [(1, State.DRAFT)]
    assert "Promote to" not in browser.get(f"{PROMPTS}greet/").content.decode()


def test_another_tenants_prompts_are_not_found_on_its_host(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    with tenant_context(tenant.tenant):
        create_prompt("private-prompt", "Secret {{ x }}")
    outsider = other_tenant.web_client()

    assert "private-prompt" not in outsider.get(PROMPTS).content.decode()
    assert outsider.get(f"{PROMPTS}private-prompt/").status_code == 404
    assert outsider.get(f"{PROMPTS}private-prompt/v1/").status_code == 404
    assert outsider.post(f"{PROMPTS}private-prompt/v1/", {"variables": "{}"}).status_code == 404
    assert outsider.get(f"{PROMPTS}private-prompt/diff/").status_code == 404
    assert outsider.post(f"{PROMPTS}private-prompt/v1/promote/").status_code == 404
    assert outsider.post(f"{PROMPTS}private-prompt/rollback/").status_code == 404
    assert outsider.post(f"{PROMPTS}private-prompt/", {"template": "mine now"}).status_code == 404
    assert states(tenant, "private-prompt") == [(1, State.DRAFT)]
    assert states(other_tenant, "private-prompt") == []
