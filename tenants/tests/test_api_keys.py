from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tenants.models import ApiKey, ApiKeyScope
from tenants.selectors import find_usable_api_key
from tenants.tests.factories import ApiKeyFactory
from testing.tenants import TenantFixture

KEYS_URL = "/api/v1/keys"


def test_creating_a_key_returns_its_secret_once_and_stores_only_a_hash(
    api_client: APIClient, tenant: TenantFixture, registry: str
) -> None:
    response = api_client.post(
        KEYS_URL,
        {"name": "ci", "scopes": ["inference"], "allowed_models": ["sim-small", "sim-small"]},
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    secret = body["api_key"]
    api_key = ApiKey.objects.get(pk=body["id"])
    assert re.fullmatch(rf"aiaas_{api_key.prefix}_[A-Za-z0-9_-]{{43}}", secret)
    assert api_key.secret_hash == ApiKey.hash_secret(secret.split("_", 2)[2])
    assert secret not in api_key.secret_hash
    assert (api_key.tenant, api_key.scopes, api_key.allowed_models) == (
        tenant.tenant,
        ["inference"],
        ["sim-small"],
    )
    assert api_key.created_by == f"key:{tenant.provisioned.issued_key.api_key.prefix}"
    listed = api_client.get(KEYS_URL).json()
    assert listed["object"] == "list"
    assert secret not in str(listed)
    assert "api_key" not in api_client.get(f"{KEYS_URL}/{api_key.pk}").json()


def test_the_list_shows_only_this_tenants_keys(
    api_client: APIClient, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    ids = {item["id"] for item in api_client.get(KEYS_URL).json()["data"]}

    assert ids == set(ApiKey.objects.filter(tenant=tenant.tenant).values_list("id", flat=True))
    assert other_tenant.provisioned.issued_key.api_key.pk not in ids


def test_a_revoked_key_stops_working_at_once(api_client: APIClient, tenant: TenantFixture) -> None:
    issued = ApiKeyFactory.create(tenant=tenant.tenant, name="short-lived", scopes=[ApiKeyScope.ADMIN])
    client = tenant.api_client(issued.secret)
    assert client.get(KEYS_URL).status_code == 200

    assert api_client.delete(f"{KEYS_URL}/{issued.api_key.pk}").status_code == 204
    assert api_client.delete(f"{KEYS_URL}/{issued.api_key.pk}").status_code == 204

    refused = client.get(KEYS_URL)
    assert refused.status_code == 401
    assert refused.json() == {
        "error": {
            "message": "Incorrect, revoked or expired API key provided.",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
            "param": None,
        }
    }


def test_a_key_without_the_admin_scope_cannot_manage_keys(tenant: TenantFixture) -> None:
    issued = ApiKeyFactory.create(tenant=tenant.tenant, name="inference only", scopes=[ApiKeyScope.INFERENCE])

    response = tenant.api_client(issued.secret).post(KEYS_URL, {"name": "escalate"}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_error"
    assert not ApiKey.objects.filter(name="escalate").exists()


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({}, "name", "required"),
        ({"name": "x", "scopes": ["inference", "root"]}, "scopes[1]", "invalid_choice"),
        ({"name": "x", "scopes": []}, "scopes", "min_length"),
        ({"name": "x" * 101}, "name", "max_length"),
        ({"name": "x", "expires_at": "yesterday"}, "expires_at", "invalid"),
        ({"name": "x", "allowed_models": "gpt-4o"}, "allowed_models", "not_a_list"),
        ({"name": "x", "allowed_models": ["sim-small", "gpt-9"]}, "allowed_models", "unknown_model"),
        ({"name": "x", "allowed_models": ["auto"]}, "allowed_models", "unknown_model"),
    ],
)
def test_an_invalid_body_gets_a_400_naming_the_field(
    api_client: APIClient, registry: str, body: dict[str, object], param: str, code: str
) -> None:
    count = ApiKey.objects.count()

    response = api_client.post(KEYS_URL, body, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert error["message"].startswith(f"{param}: ")
    assert ApiKey.objects.count() == count


def test_an_expiry_in_the_past_is_refused(api_client: APIClient) -> None:
    past = (timezone.now() - timedelta(minutes=1)).isoformat()

    response = api_client.post(KEYS_URL, {"name": "x", "expires_at": past}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "expires_at: must be in the future"


@pytest.mark.parametrize(
    ("payload", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'{"name": "\\u0000"}', "application/json"),
        (b"name=x", "application/x-www-form-urlencoded"),
        (b"\xff\xfe", "application/json"),
    ],
)
def test_malformed_bodies_get_a_4xx_with_an_error_body(
    api_client: APIClient, payload: bytes, content_type: str
) -> None:
    response = api_client.generic("POST", KEYS_URL, payload, content_type=content_type)  # type: ignore[arg-type]  # bytes on purpose

    assert 400 <= response.status_code < 500
    assert set(response.json()["error"]) == {"message", "type", "code", "param"}


def test_an_oversized_body_gets_413(api_client: APIClient) -> None:
    response = api_client.generic(
        "POST",
        KEYS_URL,
        b'{"name": "' + b"x" * (3 * 1024 * 1024) + b'"}',  # type: ignore[arg-type]
        content_type="application/json",
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert "error" in response.json()


def test_an_unknown_api_url_gets_a_json_404(api_client: APIClient) -> None:
    response = api_client.get("/api/v1/nothing-here")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_url"


def test_a_key_is_found_only_with_its_exact_secret(tenant: TenantFixture) -> None:
    key = tenant.admin_key

    assert find_usable_api_key(key) is not None
    assert find_usable_api_key(key + "x") is None
    assert find_usable_api_key(key.replace("aiaas_", "other_")) is None
    assert find_usable_api_key("") is None


def test_last_used_is_recorded(api_client: APIClient, tenant: TenantFixture) -> None:
    from django.core.cache import cache

    cache.clear()
    api_client.get(KEYS_URL)

    api_key = ApiKey.objects.get(pk=tenant.provisioned.issued_key.api_key.pk)
    assert api_key.last_used_at is not None
    assert timezone.now() - api_key.last_used_at < timedelta(seconds=30)


def test_the_list_pages_newest_first_with_limit_and_after(
    api_client: APIClient, tenant: TenantFixture
) -> None:
    ApiKeyFactory.create_batch(3, tenant=tenant.tenant)
    all_ids = list(ApiKey.objects.filter(tenant=tenant.tenant).order_by("-id").values_list("id", flat=True))

    first = api_client.get(KEYS_URL, {"limit": 2}).json()
    rest = api_client.get(KEYS_URL, {"limit": 100, "after": first["last_id"]}).json()

    assert [item["id"] for item in first["data"]] == all_ids[:2]
    assert (first["first_id"], first["last_id"], first["has_more"]) == (all_ids[0], all_ids[1], True)
    assert [item["id"] for item in rest["data"]] == all_ids[2:]
    assert rest["has_more"] is False


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"after": "-1"}])
def test_a_bad_page_parameter_gets_a_400(api_client: APIClient, query: dict[str, str | int]) -> None:
    response = api_client.get(KEYS_URL, query)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == next(iter(query))


# Limit overrides (PATCH /api/v1/keys/{id}, and on create)

LIMIT_OVERRIDES = {
    "requests_per_minute": 30,
    "tokens_per_minute": 20_000,
    "monthly_spend_budget_usd": "2.50",
    "monthly_token_budget": 1_000_000,
}


def stored_limits(api_key: ApiKey) -> tuple[object, ...]:
    api_key.refresh_from_db()
    return (
        api_key.name,
        api_key.requests_per_minute,
        api_key.tokens_per_minute,
        None if api_key.monthly_spend_budget_usd is None else str(api_key.monthly_spend_budget_usd),
        api_key.monthly_token_budget,
    )


def test_patch_renames_a_key_and_sets_its_limit_overrides(
    api_client: APIClient, tenant: TenantFixture
) -> None:
    api_key = ApiKeyFactory.create(tenant=tenant.tenant, name="before").api_key

    response = api_client.patch(
        f"{KEYS_URL}/{api_key.pk}", {"name": "after", **LIMIT_OVERRIDES}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert {field: body[field] for field in ("id", "name", *LIMIT_OVERRIDES)} == {
        "id": api_key.pk,
        "name": "after",
        **LIMIT_OVERRIDES,
    }
    assert stored_limits(api_key) == ("after", 30, 20_000, "2.50", 1_000_000)
    assert (api_key.scopes, api_key.revoked_at) == ([ApiKeyScope.INFERENCE], None)
    assert api_client.get(f"{KEYS_URL}/{api_key.pk}").json() == body


def test_patch_null_clears_an_override_and_leaves_absent_fields_alone(
    api_client: APIClient, tenant: TenantFixture
) -> None:
    api_key = ApiKeyFactory.create(tenant=tenant.tenant, name="limited").api_key
    assert api_client.patch(f"{KEYS_URL}/{api_key.pk}", LIMIT_OVERRIDES, format="json").status_code == 200

    response = api_client.patch(
        f"{KEYS_URL}/{api_key.pk}",
        {"requests_per_minute": None, "monthly_spend_budget_usd": None},
        format="json",
    )

    assert response.status_code == 200
    assert (response.json()["requests_per_minute"], response.json()["monthly_spend_budget_usd"]) == (
        None,
        None,
    )
    assert stored_limits(api_key) == ("limited", None, 20_000, None, 1_000_000)


def test_creating_a_key_accepts_limit_overrides(api_client: APIClient, tenant: TenantFixture) -> None:
    response = api_client.post(KEYS_URL, {"name": "capped", **LIMIT_OVERRIDES}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert {field: body[field] for field in LIMIT_OVERRIDES} == LIMIT_OVERRIDES
    api_key = ApiKey.objects.get(pk=body["id"])
    assert stored_limits(api_key) == ("capped", 30, 20_000, "2.50", 1_000_000)
    assert api_key.tenant == tenant.tenant


def test_a_key_created_without_overrides_has_none(api_client: APIClient) -> None:
    response = api_client.post(KEYS_URL, {"name": "plain"}, format="json")

    assert response.status_code == 201
    assert {field: response.json()[field] for field in LIMIT_OVERRIDES} == dict.fromkeys(LIMIT_OVERRIDES)


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"requests_per_minute": 0}, "requests_per_minute", "min_value"),
        ({"requests_per_minute": "5"}, "requests_per_minute", "invalid"),
        ({"tokens_per_minute": True}, "tokens_per_minute", "invalid"),
        ({"tokens_per_minute": 2**31}, "tokens_per_minute", "max_value"),
        ({"monthly_spend_budget_usd": "-1.00"}, "monthly_spend_budget_usd", "invalid"),
        ({"monthly_spend_budget_usd": 2.5}, "monthly_spend_budget_usd", "invalid"),
        ({"monthly_spend_budget_usd": "1.234"}, "monthly_spend_budget_usd", "invalid"),
        ({"monthly_spend_budget_usd": "1e3"}, "monthly_spend_budget_usd", "invalid"),
        ({"monthly_token_budget": -1}, "monthly_token_budget", "min_value"),
        ({"name": ""}, "name", "blank"),
        ({"name": "x" * 101}, "name", "max_length"),
    ],
)
def test_an_invalid_patch_gets_a_400_naming_the_field_and_changes_nothing(
    api_client: APIClient, tenant: TenantFixture, body: dict[str, object], param: str, code: str
) -> None:
    api_key = ApiKeyFactory.create(tenant=tenant.tenant, name="unchanged").api_key

    response = api_client.patch(f"{KEYS_URL}/{api_key.pk}", body, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert stored_limits(api_key) == ("unchanged", None, None, None, None)


def test_another_tenants_key_cannot_patch_a_key(
    tenant: TenantFixture, other_tenant: TenantFixture, outsider_client: APIClient
) -> None:
    api_key = ApiKeyFactory.create(tenant=tenant.tenant, name="ours").api_key

    foreign = outsider_client.patch(f"{KEYS_URL}/{api_key.pk}", {"name": "theirs"}, format="json")
    nonexistent = outsider_client.patch(f"{KEYS_URL}/987654321", {"name": "theirs"}, format="json")

    assert foreign.status_code == 404
    assert foreign.content == nonexistent.content
    assert stored_limits(api_key) == ("ours", None, None, None, None)


def test_a_key_without_the_admin_scope_cannot_patch_keys(tenant: TenantFixture) -> None:
    issued = ApiKeyFactory.create(tenant=tenant.tenant, name="inference only", scopes=[ApiKeyScope.INFERENCE])

    response = tenant.api_client(issued.secret).patch(
        f"{KEYS_URL}/{issued.api_key.pk}", {"requests_per_minute": 1_000_000}, format="json"
    )

    assert response.status_code == 403
    assert stored_limits(issued.api_key) == ("inference only", None, None, None, None)


def test_a_key_has_a_priority_set_on_create_and_by_patch(
    api_client: APIClient, tenant: TenantFixture
) -> None:
    created = api_client.post(KEYS_URL, {"name": "batch jobs", "priority": "low"}, format="json")
    plain = api_client.post(KEYS_URL, {"name": "plain"}, format="json")

    assert (created.status_code, plain.status_code) == (201, 201)
    assert (created.json()["priority"], plain.json()["priority"]) == ("low", "normal")
    patched = api_client.patch(f"{KEYS_URL}/{created.json()['id']}", {"priority": "high"}, format="json")
    assert patched.status_code == 200
    assert patched.json()["priority"] == "high"
    assert ApiKey.objects.get(pk=created.json()["id"]).priority == "high"


def test_an_unknown_priority_gets_a_400_and_changes_nothing(
    api_client: APIClient, tenant: TenantFixture
) -> None:
    api_key = ApiKeyFactory.create(tenant=tenant.tenant, name="steady").api_key

    response = api_client.patch(f"{KEYS_URL}/{api_key.pk}", {"priority": "urgent"}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("priority", "invalid_choice")
    api_key.refresh_from_db()
    assert api_key.priority == "normal"


def test_another_tenants_key_cannot_change_a_priority(
    tenant: TenantFixture, outsider_client: APIClient
) -> None:
    api_key = ApiKeyFactory.create(tenant=tenant.tenant, name="ours").api_key

    response = outsider_client.patch(f"{KEYS_URL}/{api_key.pk}", {"priority": "low"}, format="json")

    assert response.status_code == 404
    api_key.refresh_from_db()
    assert api_key.priority == "normal"
