"""The dashboard's API keys pages: create, list, revoke, and each key's limits."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.selectors import LimitItem
from accounts.tests.factories import browser_for, make_user
from accounts.tests.test_web import ENTERPRISE_LIMITS
from tenants.models import ApiKey, ApiKeyPriority, ApiKeyScope
from tenants.services import create_api_key, revoke_api_key
from testing.tenants import TenantFixture

KEYS_PAGE = "/dashboard/keys/"


def revoke_url(api_key: ApiKey) -> str:
    return f"/dashboard/keys/{api_key.pk}/revoke/"


def test_creating_a_key_redirects_and_shows_its_secret_once_and_the_key_works(
    tenant: TenantFixture, registry: str
) -> None:
    client = tenant.web_client()
    count = ApiKey.objects.count()

    created = client.post(
        KEYS_PAGE,
        {
            "name": "backend",
            "scopes": ["admin", "inference"],
            "allowed_models": "sim-small, , sim-small, sim-large",
        },
    )
    session_between = str(dict(client.session))
    shown = client.get(created["Location"])
    reloaded = client.get(created["Location"])

    assert (created.status_code, created["Location"]) == (302, "/dashboard/keys/#new-key")
    assert shown.status_code == 200
    secret = shown.context["issued"].secret
    assert secret in shown.content.decode()
    assert secret not in session_between  # the session holds a reference, the secret waits in Redis
    api_key = ApiKey.objects.get(tenant=tenant.tenant, name="backend")
    assert (api_key.scopes, api_key.allowed_models, api_key.expires_at, api_key.created_by) == (
        ["admin", "inference"],
        ["sim-small", "sim-large"],
        None,
        tenant.owner_email,
    )
    assert shown["Cache-Control"] == "max-age=0, no-cache, no-store, must-revalidate, private"
    assert reloaded.context["issued"] is None
    assert secret not in reloaded.content.decode()
    assert ApiKey.objects.count() == count + 1
    api_response = APIClient().get("/api/v1/keys", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api_response.status_code == 200
    assert api_key.pk in {item["id"] for item in api_response.json()["data"]}


def test_a_key_can_expire_at_a_chosen_time(tenant: TenantFixture) -> None:
    response = tenant.web_client().post(
        KEYS_PAGE, {"name": "temp", "scopes": ["read"], "expires_at": "2099-01-31T12:30"}, follow=True
    )

    assert response.status_code == 200
    api_key = ApiKey.objects.get(tenant=tenant.tenant, name="temp")
    assert api_key.expires_at is not None
    assert api_key.expires_at.isoformat() == "2099-01-31T12:30:00+00:00"


def test_the_key_form_refuses_a_past_expiry_and_no_scopes(tenant: TenantFixture) -> None:
    count = ApiKey.objects.count()
    past = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")

    response = tenant.web_client().post(KEYS_PAGE, {"name": "late", "expires_at": past})

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "scopes": ["This field is required."],
        "expires_at": ["The expiry must be in the future."],
    }
    assert response.context["issued"] is None
    assert ApiKey.objects.count() == count


def test_the_key_form_refuses_a_model_the_registry_does_not_have(
    tenant: TenantFixture, registry: str
) -> None:
    count = ApiKey.objects.count()

    response = tenant.web_client().post(
        KEYS_PAGE, {"name": "typo", "scopes": ["inference"], "allowed_models": "sim-small, sim-smal"}
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "allowed_models": ["No model is named `sim-smal` (GET /v1/models lists them)."]
    }
    assert ApiKey.objects.count() == count


def test_the_keys_page_lists_only_this_tenants_keys_with_their_status(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    expired = create_api_key(tenant.tenant, name="expired", scopes=[ApiKeyScope.READ])
    expired.api_key.expires_at = timezone.now() - timedelta(minutes=1)
    expired.api_key.save(update_fields=["expires_at"])

    response = tenant.web_client().get(KEYS_PAGE)

    statuses = {row.key.name: str(row.status) for row in response.context["keys"]}
    assert statuses == {"Default admin key": "active", "expired": "expired"}
    assert other_tenant.provisioned.issued_key.api_key.prefix not in response.content.decode()


def test_revoking_a_key_from_the_dashboard_stops_it_working(tenant: TenantFixture) -> None:
    issued = create_api_key(tenant.tenant, name="doomed", scopes=[ApiKeyScope.ADMIN])

    response = tenant.web_client().post(revoke_url(issued.api_key))

    assert response.status_code == 302
    assert response["Location"] == KEYS_PAGE
    issued.api_key.refresh_from_db()
    assert issued.api_key.revoked_at is not None
    assert tenant.api_client(issued.secret).get("/api/v1/keys").status_code == 401


def test_revoking_another_tenants_key_is_a_404_and_leaves_it_working(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    foreign_key = other_tenant.provisioned.issued_key.api_key

    response = tenant.web_client().post(revoke_url(foreign_key))

    assert response.status_code == 404
    foreign_key.refresh_from_db()
    assert foreign_key.revoked_at is None
    assert other_tenant.api_client().get("/api/v1/keys").status_code == 200


def test_revoking_takes_a_post(tenant: TenantFixture) -> None:
    api_key = tenant.provisioned.issued_key.api_key

    response = tenant.web_client().get(revoke_url(api_key))

    assert response.status_code == 405
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


def test_a_member_sees_keys_read_only_and_cannot_create_or_revoke(tenant: TenantFixture) -> None:
    client = browser_for(tenant, make_user(tenant, role=Role.MEMBER))
    api_key = tenant.provisioned.issued_key.api_key
    count = ApiKey.objects.count()

    page = client.get(KEYS_PAGE)
    create = client.post(KEYS_PAGE, {"name": "sneaky", "scopes": ["admin"]})
    revoke = client.post(revoke_url(api_key))

    assert page.status_code == 200
    assert "Create a key" not in page.content.decode()
    assert "Revoke" not in page.content.decode()
    assert (create.status_code, revoke.status_code) == (403, 403)
    assert ApiKey.objects.count() == count
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


def test_an_admin_creates_keys(tenant: TenantFixture) -> None:
    admin = make_user(tenant, role=Role.ADMIN)

    response = browser_for(tenant, admin).post(
        KEYS_PAGE, {"name": "by-admin", "scopes": ["inference"]}, follow=True
    )

    assert response.status_code == 200
    assert ApiKey.objects.get(tenant=tenant.tenant, name="by-admin").created_by == admin.email


def test_dashboard_forms_refuse_a_post_without_the_csrf_token(tenant: TenantFixture) -> None:
    client = tenant.web_client()
    client.handler.enforce_csrf_checks = True
    count = ApiKey.objects.count()

    create = client.post(KEYS_PAGE, {"name": "forged", "scopes": ["admin"]})
    revoke = client.post(revoke_url(tenant.provisioned.issued_key.api_key))

    assert (create.status_code, revoke.status_code) == (403, 403)
    assert ApiKey.objects.count() == count


NO_LIMIT_OVERRIDES = {field: "" for field in ApiKey.LIMIT_FIELDS}


def limits_url(api_key: ApiKey) -> str:
    return f"/dashboard/keys/{api_key.pk}/limits/"


def stored_limits(api_key: ApiKey) -> dict[str, object]:
    api_key.refresh_from_db()
    return {field: getattr(api_key, field) for field in ApiKey.LIMIT_FIELDS}


def messages_of(response) -> list[str]:  # a test client response
    return [str(message) for message in response.context["messages"]]


def test_creating_a_key_with_limit_overrides_stores_and_lists_them(tenant: TenantFixture) -> None:
    response = tenant.web_client().post(
        KEYS_PAGE,
        {
            "name": "metered",
            "scopes": ["inference"],
            "requests_per_minute": "120",
            "tokens_per_minute": "50000",
            "monthly_token_budget": "1500000",
            "monthly_spend_budget_usd": "25.5",
        },
        follow=True,
    )

    assert response.status_code == 200
    assert response.context["issued"] is not None
    api_key = ApiKey.objects.get(tenant=tenant.tenant, name="metered")
    assert stored_limits(api_key) == {
        "requests_per_minute": 120,
        "tokens_per_minute": 50_000,
        "monthly_spend_budget_usd": Decimal("25.50"),
        "monthly_token_budget": 1_500_000,
    }
    listed = {row.key.name: row.limits for row in response.context["keys"]}
    assert listed == {
        "metered": (
            LimitItem("120 rpm"),
            LimitItem("50k tpm"),
            LimitItem("1.5M tokens/month"),
            LimitItem("$25.50/month"),
        ),
        "Default admin key": (LimitItem("6k rpm", from_plan=True), LimitItem("10M tpm", from_plan=True)),
    }
    content = response.content.decode()
    assert "<span>120 rpm</span> · <span>50k tpm</span>" in content
    assert '<span>6k rpm <span class="muted">(plan)</span></span>' in content


def test_empty_limit_fields_create_a_key_on_the_plans_limits(tenant: TenantFixture) -> None:
    response = tenant.web_client().post(
        KEYS_PAGE, {"name": "planned", "scopes": ["inference"], **NO_LIMIT_OVERRIDES}, follow=True
    )

    assert response.status_code == 200
    assert stored_limits(ApiKey.objects.get(tenant=tenant.tenant, name="planned")) == dict.fromkeys(
        ApiKey.LIMIT_FIELDS
    )
    assert f"The plan allows {ENTERPRISE_LIMITS}." in response.content.decode()


def test_the_key_form_refuses_invalid_limits_and_creates_nothing(tenant: TenantFixture) -> None:
    count = ApiKey.objects.count()

    response = tenant.web_client().post(
        KEYS_PAGE,
        {
            "name": "bad",
            "scopes": ["read"],
            "requests_per_minute": "0",
            "tokens_per_minute": "1.5",
            "monthly_token_budget": "-1",
            "monthly_spend_budget_usd": "1.234",
        },
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "requests_per_minute": ["Ensure this value is greater than or equal to 1."],
        "tokens_per_minute": ["Enter a whole number."],
        "monthly_token_budget": ["Ensure this value is greater than or equal to 0."],
        "monthly_spend_budget_usd": ["Enter an amount in USD like 25.00: digits, at most 2 decimals."],
    }
    assert response.context["issued"] is None
    assert ApiKey.objects.count() == count


def test_the_limits_page_shows_the_keys_overrides(tenant: TenantFixture) -> None:
    api_key = create_api_key(
        tenant.tenant,
        name="tuned",
        scopes=[ApiKeyScope.INFERENCE],
        requests_per_minute=120,
        monthly_spend_budget_usd=Decimal("25.00"),
    ).api_key

    response = tenant.web_client().get(limits_url(api_key))

    assert response.status_code == 200
    assert response.templates[0].name == "dashboard/key_limits.html"
    assert response.context["form"].initial == {
        "priority": "normal",
        "requests_per_minute": 120,
        "tokens_per_minute": None,
        "monthly_spend_budget_usd": Decimal("25.00"),
        "monthly_token_budget": None,
    }
    content = response.content.decode()
    assert 'name="requests_per_minute" value="120"' in content
    assert 'name="monthly_spend_budget_usd" value="25.00"' in content
    assert f"The plan allows {ENTERPRISE_LIMITS}." in content


def test_the_keys_page_links_each_active_key_to_its_limits(tenant: TenantFixture) -> None:
    revoked = create_api_key(tenant.tenant, name="gone", scopes=[ApiKeyScope.READ]).api_key
    revoke_api_key(revoked)

    content = tenant.web_client().get(KEYS_PAGE).content.decode()

    assert f'href="{limits_url(tenant.provisioned.issued_key.api_key)}"' in content
    assert limits_url(revoked) not in content
    assert content.count('>Edit limits<span class="visually-hidden"> of ') == 1


def test_editing_limits_saves_them_and_empty_fields_clear_them(tenant: TenantFixture) -> None:
    api_key = create_api_key(
        tenant.tenant, name="tuned", scopes=[ApiKeyScope.INFERENCE], monthly_token_budget=1_000
    ).api_key
    client = tenant.web_client()

    saved = client.post(
        limits_url(api_key),
        {
            "requests_per_minute": "30",
            "tokens_per_minute": "2000",
            "monthly_token_budget": "",
            "monthly_spend_budget_usd": "0",
        },
        follow=True,
    )

    assert saved.redirect_chain == [(KEYS_PAGE, 302)]
    assert messages_of(saved) == ["Saved the limits of “tuned”."]
    assert stored_limits(api_key) == {
        "requests_per_minute": 30,
        "tokens_per_minute": 2_000,
        "monthly_spend_budget_usd": Decimal("0.00"),
        "monthly_token_budget": None,
    }

    cleared = client.post(limits_url(api_key), NO_LIMIT_OVERRIDES, follow=True)

    assert cleared.redirect_chain == [(KEYS_PAGE, 302)]
    assert messages_of(cleared) == ["Saved the limits of “tuned”."]
    assert stored_limits(api_key) == dict.fromkeys(ApiKey.LIMIT_FIELDS)
    unchanged = client.post(limits_url(api_key), NO_LIMIT_OVERRIDES, follow=True)
    assert messages_of(unchanged) == ["The limits of “tuned” are unchanged."]


def test_editing_another_tenants_key_limits_is_a_404_and_changes_nothing(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    foreign_key = other_tenant.provisioned.issued_key.api_key
    client = tenant.web_client()

    page = client.get(limits_url(foreign_key))
    edit = client.post(limits_url(foreign_key), {**NO_LIMIT_OVERRIDES, "requests_per_minute": "1"})

    assert (page.status_code, edit.status_code) == (404, 404)
    assert stored_limits(foreign_key) == dict.fromkeys(ApiKey.LIMIT_FIELDS)


def test_a_revoked_key_has_no_limits_page(tenant: TenantFixture) -> None:
    api_key = create_api_key(tenant.tenant, name="gone", scopes=[ApiKeyScope.READ]).api_key
    revoke_api_key(api_key)
    client = tenant.web_client()

    page = client.get(limits_url(api_key))
    edit = client.post(limits_url(api_key), {**NO_LIMIT_OVERRIDES, "requests_per_minute": "1"})

    assert (page.status_code, edit.status_code) == (404, 404)
    assert stored_limits(api_key) == dict.fromkeys(ApiKey.LIMIT_FIELDS)


def test_a_member_can_neither_see_nor_edit_key_limits(tenant: TenantFixture) -> None:
    client = browser_for(tenant, make_user(tenant, role=Role.MEMBER))
    api_key = tenant.provisioned.issued_key.api_key

    keys_page = client.get(KEYS_PAGE)
    page = client.get(limits_url(api_key))
    edit = client.post(limits_url(api_key), {**NO_LIMIT_OVERRIDES, "requests_per_minute": "1"})

    assert "Edit limits" not in keys_page.content.decode()
    assert (page.status_code, edit.status_code) == (403, 403)
    assert stored_limits(api_key) == dict.fromkeys(ApiKey.LIMIT_FIELDS)


def test_invalid_limits_rerender_with_errors_and_change_nothing(tenant: TenantFixture) -> None:
    api_key = create_api_key(
        tenant.tenant, name="tuned", scopes=[ApiKeyScope.INFERENCE], requests_per_minute=120
    ).api_key

    response = tenant.web_client().post(
        limits_url(api_key),
        {
            "requests_per_minute": "many",
            "tokens_per_minute": "2147483648",
            "monthly_token_budget": "",
            "monthly_spend_budget_usd": "1e3",
        },
    )

    assert response.status_code == 200
    assert response.templates[0].name == "dashboard/key_limits.html"
    assert response.context["form"].errors == {
        "requests_per_minute": ["Enter a whole number."],
        "tokens_per_minute": ["Ensure this value is less than or equal to 2147483647."],
        "monthly_spend_budget_usd": ["Enter an amount in USD like 25.00: digits, at most 2 decimals."],
    }
    assert stored_limits(api_key) == {
        "requests_per_minute": 120,
        "tokens_per_minute": None,
        "monthly_spend_budget_usd": None,
        "monthly_token_budget": None,
    }


@pytest.mark.parametrize("amount", ["-0", "-1", "1.234", "12345678901", "25,00", "NaN", "1_000"])
def test_a_spend_budget_is_plain_usd_with_at_most_two_decimals(tenant: TenantFixture, amount: str) -> None:
    api_key = tenant.provisioned.issued_key.api_key

    response = tenant.web_client().post(
        limits_url(api_key), {**NO_LIMIT_OVERRIDES, "monthly_spend_budget_usd": amount}
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "monthly_spend_budget_usd": ["Enter an amount in USD like 25.00: digits, at most 2 decimals."]
    }
    assert stored_limits(api_key) == dict.fromkeys(ApiKey.LIMIT_FIELDS)


def test_a_keys_priority_is_chosen_at_creation_and_changed_with_its_limits(tenant: TenantFixture) -> None:
    client = tenant.web_client()
    form = client.get(KEYS_PAGE).content.decode()
    created = client.post(KEYS_PAGE, {"name": "batch-jobs", "scopes": ["inference"], "priority": "low"})
    unspecified = client.post(KEYS_PAGE, {"name": "plain", "scopes": ["inference"]})
    api_key = ApiKey.objects.get(tenant=tenant.tenant, name="batch-jobs")
    page = client.get(limits_url(api_key)).content.decode()

    raised = client.post(limits_url(api_key), {**NO_LIMIT_OVERRIDES, "priority": "high"}, follow=True)
    after_raise = ApiKey.objects.get(pk=api_key.pk).priority
    kept = client.post(limits_url(api_key), NO_LIMIT_OVERRIDES, follow=True)
    refused = client.post(limits_url(api_key), {**NO_LIMIT_OVERRIDES, "priority": "urgent"})

    assert 'name="priority"' in form
    assert (created.status_code, unspecified.status_code) == (302, 302)
    assert ApiKey.objects.get(tenant=tenant.tenant, name="plain").priority == ApiKeyPriority.NORMAL
    assert '<option value="low" selected>' in page
    assert messages_of(raised) == ["Saved the limits of “batch-jobs”."]
    assert after_raise == ApiKeyPriority.HIGH
    assert messages_of(kept) == ["The limits of “batch-jobs” are unchanged."]
    assert ApiKey.objects.get(pk=api_key.pk).priority == ApiKeyPriority.HIGH
    assert refused.status_code == 200
    assert "priority" in refused.context["form"].errors
