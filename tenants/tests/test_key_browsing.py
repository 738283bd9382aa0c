"""The API keys page past a handful of keys: 25 a page, search by name or prefix,
the scopes explained, and each key's own page with its usage."""

from __future__ import annotations

from aiaas.redis_clients import sync_client
from tenants.models import ApiKey, ApiKeyScope
from tenants.services import create_api_key
from tenants.web import new_keys
from tenants.web.forms import SCOPE_EXPLANATIONS
from testing.tenants import TenantFixture

KEYS_PAGE = "/dashboard/keys/"


def key_page(api_key: ApiKey) -> str:
    return f"/dashboard/keys/{api_key.pk}/"


def make_keys(tenant: TenantFixture, count: int, name: str = "batch") -> list[ApiKey]:
    return [
        create_api_key(tenant.tenant, name=f"{name}-{index:03}", scopes=[ApiKeyScope.READ]).api_key
        for index in range(count)
    ]


def test_the_keys_page_shows_25_keys_a_page_and_pages_through_the_rest(tenant: TenantFixture) -> None:
    make_keys(tenant, 30)  # with the fixture's admin key: 31
    client = tenant.web_client()

    first = client.get(KEYS_PAGE)
    second = client.get(KEYS_PAGE, {"page": "2"})
    past_the_end = client.get(KEYS_PAGE, {"page": "99"})
    garbage = client.get(KEYS_PAGE, {"page": "two"})

    assert first.status_code == second.status_code == 200
    assert [len(first.context["keys"]), len(second.context["keys"])] == [25, 6]
    names = {row.key.name for row in first.context["keys"]} | {row.key.name for row in second.context["keys"]}
    assert len(names) == 31
    assert "Page 1 of 2 (31)" in first.content.decode()
    assert 'href="?page=2"' in first.content.decode()
    assert past_the_end.context["page"].number == 2
    assert garbage.context["page"].number == 1


def test_searching_finds_keys_by_name_or_by_a_pasted_prefix(tenant: TenantFixture) -> None:
    make_keys(tenant, 3, name="backend")
    frontend = create_api_key(tenant.tenant, name="Frontend", scopes=[ApiKeyScope.INFERENCE])
    client = tenant.web_client()

    by_name = client.get(KEYS_PAGE, {"q": "BACKEND"})
    by_prefix = client.get(KEYS_PAGE, {"q": frontend.secret[:20]})
    nothing = client.get(KEYS_PAGE, {"q": "<none>"})

    assert [row.key.name for row in by_name.context["keys"]] == ["backend-002", "backend-001", "backend-000"]
    assert [row.key.pk for row in by_prefix.context["keys"]] == [frontend.api_key.pk]
    assert nothing.context["keys"] == []
    assert (
        "No key's name or prefix matches \N{LEFT DOUBLE QUOTATION MARK}&lt;none&gt;"
        in nothing.content.decode()
    )


def test_a_search_with_a_nul_character_finds_nothing_instead_of_failing(tenant: TenantFixture) -> None:
    response = tenant.web_client().get(KEYS_PAGE, {"q": "batch\x00"})

    assert response.status_code == 200
    assert response.context["keys"] == []


def test_search_keeps_to_the_tenants_own_keys(tenant: TenantFixture, other_tenant: TenantFixture) -> None:
    foreign = other_tenant.provisioned.issued_key.api_key

    response = tenant.web_client().get(KEYS_PAGE, {"q": foreign.prefix})

    assert response.context["keys"] == []
    assert f"aiaas_{foreign.prefix}_" not in response.content.decode()


def test_the_search_is_kept_while_paging(tenant: TenantFixture) -> None:
    make_keys(tenant, 26, name="paged")

    response = tenant.web_client().get(KEYS_PAGE, {"q": "paged"})

    assert 'href="?q=paged&amp;page=2"' in response.content.decode()


def test_every_scope_is_explained_on_the_form(tenant: TenantFixture) -> None:
    content = tenant.web_client().get(KEYS_PAGE).content.decode()

    assert set(SCOPE_EXPLANATIONS) == set(ApiKeyScope)
    for explanation in SCOPE_EXPLANATIONS.values():
        assert content.count(explanation) == 2  # beside its checkbox, and in the scopes card


def test_a_keys_page_without_usage_says_so(tenant: TenantFixture) -> None:
    issued = create_api_key(tenant.tenant, name="quiet", scopes=[ApiKeyScope.READ])

    response = tenant.web_client().get(key_page(issued.api_key))

    assert response.status_code == 200
    assert "No request used this key" in response.content.decode()
    assert 'id="key-last-used">Never<' in response.content.decode()


def test_a_keys_page_refuses_a_bad_range_with_400(tenant: TenantFixture) -> None:
    api_key = tenant.provisioned.issued_key.api_key

    response = tenant.web_client().get(key_page(api_key), {"from": "2026-01-02", "to": "2026-01-01"})

    assert response.status_code == 400
    assert "The range ends before it starts." in response.content.decode()


def test_another_tenants_key_page_is_a_404(tenant: TenantFixture, other_tenant: TenantFixture) -> None:
    foreign = other_tenant.provisioned.issued_key.api_key

    response = tenant.web_client().get(key_page(foreign))

    assert response.status_code == 404


def test_a_secret_not_shown_within_its_window_is_gone(tenant: TenantFixture) -> None:
    client = tenant.web_client()
    created = client.post(KEYS_PAGE, {"name": "late", "scopes": ["read"]})
    reference = client.session[new_keys.SESSION_KEY]["reference"]
    sync_client().delete(new_keys.secret_key(tenant.tenant, reference))  # as NEW_KEY_SECONDS passing would

    page = client.get(created["Location"])

    assert page.context["issued"] is None
    assert ApiKey.objects.filter(tenant=tenant.tenant, name="late").exists()


def test_a_waiting_secret_is_keyed_by_its_tenant(tenant: TenantFixture, other_tenant: TenantFixture) -> None:
    client = tenant.web_client()
    client.post(KEYS_PAGE, {"name": "mine", "scopes": ["read"]})
    reference = client.session[new_keys.SESSION_KEY]["reference"]

    assert sync_client().exists(new_keys.secret_key(tenant.tenant, reference)) == 1
    assert sync_client().exists(new_keys.secret_key(other_tenant.tenant, reference)) == 0
