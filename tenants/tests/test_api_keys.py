from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from aiaas.testing.tenants import TenantFixture
from tenants.models import ApiKey, ApiKeyScope
from tenants.selectors import find_usable_api_key
from tenants.services import create_api_key

KEYS_URL = "/api/v1/keys"


def test_creating_a_key_returns_its_secret_once_and_stores_only_a_hash(
    api_client: APIClient, tenant: TenantFixture
) -> None:
    response = api_client.post(
        KEYS_URL, {"name": "ci", "scopes": ["inference"], "allowed_models": ["gpt-4o-mini"]}, format="json"
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
        ["gpt-4o-mini"],
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
    issued = create_api_key(tenant.tenant, name="short-lived", scopes=[ApiKeyScope.ADMIN])
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
    issued = create_api_key(tenant.tenant, name="inference only", scopes=[ApiKeyScope.INFERENCE])

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
    ],
)
def test_an_invalid_body_gets_a_400_naming_the_field(
    api_client: APIClient, body: dict[str, object], param: str, code: str
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


def test_an_oversized_body_gets_413_or_400_not_500(api_client: APIClient) -> None:
    response = api_client.generic(
        "POST",
        KEYS_URL,
        b'{"name": "' + b"x" * (3 * 1024 * 1024) + b'"}',  # type: ignore[arg-type]
        content_type="application/json",
    )

    assert response.status_code in {400, 413}
    assert "error" in response.json()


def test_an_unknown_api_url_gets_a_json_404(api_client: APIClient) -> None:
    response = api_client.get("/api/v1/nothing-here")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


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
    for number in range(3):
        create_api_key(tenant.tenant, name=f"page-{number}", scopes=[ApiKeyScope.READ])
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
