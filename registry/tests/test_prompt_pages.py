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
        versions = Entry.objects.filter(kind=Kind.PROMPT, name=name).order_by("version")
        return list(versions.values_list("version", "state"))


def prompt(tenant: TenantFixture, name: str, *templates: str) -> list[Entry]:
    with tenant_context(tenant.tenant):
        return [create_prompt(name, template) for template in templates]


def test_the_list_links_each_prompt_to_its_latest_version(tenant: TenantFixture) -> None:
    _, latest = prompt(tenant, "greet", "Hi {{ who }}", "Hello {{ who }}")

    page = tenant.web_client().get(PROMPTS)

    assert page.status_code == 200
    assert f'<a href="{PROMPTS}{latest.pk}/">greet</a>' in page.content.decode()


def test_the_editor_creates_a_prompt_then_saves_new_versions(tenant: TenantFixture) -> None:
    browser = tenant.web_client()

    created = browser.post(f"{PROMPTS}new/", {"name": "triage", "template": "Classify {{ input.text }}"})
    with tenant_context(tenant.tenant):
        first = Entry.objects.get(name="triage")
    edited = browser.post(f"{PROMPTS}{first.pk}/", {"template": "Classify briefly {{ input.text }}"})
    broken = browser.post(f"{PROMPTS}{first.pk}/", {"template": "{{ oops "})

    with tenant_context(tenant.tenant):
        second = Entry.objects.get(name="triage", version=2)
    assert created["Location"] == f"{PROMPTS}{first.pk}/"
    assert edited["Location"] == f"{PROMPTS}{second.pk}/"
    assert broken.status_code == 400
    assert "Invalid template" in broken.content.decode()
    assert states(tenant, "triage") == [(1, "draft"), (2, "draft")]
    page = browser.get(f"{PROMPTS}{second.pk}/").content.decode()
    assert "Classify briefly {{ input.text }}" in page
    assert f"<td>{tenant.owner_email}</td><td>Created</td><td>2</td>" in page  # the history


def test_a_version_renders_with_variables_and_says_which_is_missing(tenant: TenantFixture) -> None:
    (entry,) = prompt(tenant, "greet", "Hello {{ who }} <b>{{ mood }}</b>")
    browser, page = tenant.web_client(), f"{PROMPTS}{entry.pk}/"

    rendered = browser.post(page, {"variables": '{"who": "<script>x</script>", "mood": "glad"}'})
    missing = browser.post(page, {"variables": '{"who": "Ada"}'})
    not_json = browser.post(page, {"variables": "{nope"})
    too_deep = browser.post(page, {"variables": "[" * 5000 + "]" * 5000})

    assert rendered.status_code == 200
    assert "Hello &lt;script&gt;x&lt;/script&gt; &lt;b&gt;glad&lt;/b&gt;" in rendered.content.decode()
    assert "<script>x</script>" not in rendered.content.decode()
    assert missing.status_code == 400
    assert "&#x27;mood&#x27; is undefined" in missing.content.decode()
    assert not_json.status_code == 400
    assert "Not JSON" in not_json.content.decode()
    assert (too_deep.status_code, "Not JSON: nested too deeply." in too_deep.content.decode()) == (400, True)
    assert states(tenant, "greet") == [(1, "draft")]  # a preview saves nothing


def test_the_diff_compares_two_versions_side_by_side_or_unified_escaped(tenant: TenantFixture) -> None:
    _, second = prompt(
        tenant, "greet", "Hello {{ who }}\nBye", "Hello {{ who }}\n<img src=x onerror=alert(1)>\nBye"
    )
    browser = tenant.web_client()

    side = browser.get(f"{PROMPTS}{second.pk}/diff/").content.decode()
    unified = browser.get(f"{PROMPTS}{second.pk}/diff/?from=1&to=2&view=unified").content.decode()

    assert (
        '<tr class="diff-insert"><td class="muted"></td><td><code></code></td><td class="muted">2</td>'
        in side
    )
    assert "<code>&lt;img src=x onerror=alert(1)&gt;</code>" in side
    assert '<span class="diff-insert">+&lt;img src=x onerror=alert(1)&gt;</span>' in unified
    assert '<span class="diff-file">--- greet v1</span>' in unified
    assert "<img src=x" not in side + unified
    assert browser.get(f"{PROMPTS}{second.pk}/diff/?from=9").status_code == 404


def test_an_owner_promotes_and_rolls_back_and_the_history_shows_it(tenant: TenantFixture) -> None:
    first, second = prompt(tenant, "greet", "Hi {{ who }}", "Hello {{ who }}")
    browser = tenant.web_client()

    for entry in (first, first, second, second):
        assert browser.post(f"{PROMPTS}{entry.pk}/promote/").status_code == 302
    assert states(tenant, "greet") == [(1, State.SUPERSEDED), (2, State.PRODUCTION)]
    back = browser.post(f"{PROMPTS}{second.pk}/rollback/")
    refused = browser.post(f"{PROMPTS}{second.pk}/rollback/", follow=True)

    assert back["Location"] == f"{PROMPTS}{first.pk}/"
    assert states(tenant, "greet") == [(1, State.PRODUCTION), (2, State.ROLLED_BACK)]
    assert "no earlier production version" in refused.content.decode()
    with tenant_context(tenant.tenant):
        rolled = AuditEvent.objects.filter(action="rolled_back", entry__name="greet")
        assert {(e.entry.version, e.actor) for e in rolled} == {
            (1, tenant.owner_email),
            (2, tenant.owner_email),
        }
    assert "production → rolled_back" in browser.get(f"{PROMPTS}{first.pk}/").content.decode()


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MEMBER])
def test_only_owners_promote_or_roll_back(tenant: TenantFixture, role: Role) -> None:
    (entry,) = prompt(tenant, "greet", "Hi {{ who }}")
    browser = browser_for(tenant, make_user(tenant, role=role))

    assert browser.post(f"{PROMPTS}{entry.pk}/promote/").status_code == 403
    assert browser.post(f"{PROMPTS}{entry.pk}/rollback/").status_code == 403
    assert states(tenant, "greet") == [(1, State.DRAFT)]
    assert "Promote to" not in browser.get(f"{PROMPTS}{entry.pk}/").content.decode()


def test_another_tenants_prompts_are_not_found_on_its_host(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    (entry,) = prompt(tenant, "private-prompt", "Secret {{ x }}")
    outsider, page = other_tenant.web_client(), f"{PROMPTS}{entry.pk}/"

    assert "private-prompt" not in outsider.get(PROMPTS).content.decode()
    assert outsider.get(page).status_code == 404
    assert outsider.post(page, {"variables": "{}"}).status_code == 404
    assert outsider.post(page, {"template": "mine now"}).status_code == 404
    assert outsider.get(f"{page}diff/").status_code == 404
    assert outsider.post(f"{page}promote/").status_code == 404
    assert outsider.post(f"{page}rollback/").status_code == 404
    assert states(tenant, "private-prompt") == [(1, State.DRAFT)]
    assert states(other_tenant, "private-prompt") == []
