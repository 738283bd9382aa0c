"""The tenant host: sign-in, sessions that stay on their host, and API keys."""

from __future__ import annotations

from datetime import timedelta

from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.selectors import DashboardSummary
from accounts.tests.factories import browser_for, make_user
from aiaas.testing.tenants import TEST_PASSWORD, TenantFixture
from tenants.models import ApiKey, ApiKeyScope
from tenants.services import create_api_key

KEYS_PAGE = "/dashboard/keys/"


def revoke_url(api_key: ApiKey) -> str:
    return f"/dashboard/keys/{api_key.pk}/revoke/"


def test_the_tenant_root_shows_the_login_form_to_anonymous_visitors(tenant: TenantFixture) -> None:
    response = Client(HTTP_HOST=tenant.host).get("/")

    assert response.status_code == 200
    assert response.templates[0].name == "registration/login.html"
    content = response.content.decode()
    assert "Sign in to Alpha Corp" in content
    assert 'action="/login/"' in content
    assert 'name="username"' in content
    assert 'name="password"' in content
    assert 'name="csrfmiddlewaretoken"' in content


def test_the_tenant_root_sends_signed_in_users_to_the_dashboard(tenant: TenantFixture) -> None:
    response = tenant.web_client().get("/")

    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"


def test_an_owner_signs_in_on_their_own_host(tenant: TenantFixture) -> None:
    client = Client(HTTP_HOST=tenant.host)

    response = client.post("/login/", {"username": tenant.owner_email, "password": TEST_PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
    dashboard = client.get("/dashboard/")
    assert dashboard.status_code == 200
    assert tenant.owner_email in dashboard.content.decode()


def test_an_owner_cannot_sign_in_on_another_tenants_host(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    client = Client(HTTP_HOST=other_tenant.host)

    response = client.post("/login/", {"username": tenant.owner_email, "password": TEST_PASSWORD})

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        "Please enter a correct email and password. Note that both fields may be case-sensitive."
    ]
    assert "_auth_user_id" not in client.session
    assert client.get("/dashboard/")["Location"] == "/login/?next=/dashboard/"


def test_a_session_cookie_from_one_tenants_host_does_not_authenticate_on_another(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    own = tenant.web_client()
    assert own.get("/dashboard/").status_code == 200
    foreign = Client(HTTP_HOST=other_tenant.host)
    foreign.cookies["sessionid"] = own.cookies["sessionid"].value

    response = foreign.get("/dashboard/")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/dashboard/"


def test_every_dashboard_page_requires_sign_in(tenant: TenantFixture) -> None:
    client = Client(HTTP_HOST=tenant.host)

    locations = {
        path: client.get(path)["Location"] for path in ("/dashboard/", KEYS_PAGE, "/dashboard/team/")
    }

    assert locations == {
        "/dashboard/": "/login/?next=/dashboard/",
        KEYS_PAGE: "/login/?next=/dashboard/keys/",
        "/dashboard/team/": "/login/?next=/dashboard/team/",
    }


def test_signing_out_takes_a_post_and_ends_the_session(tenant: TenantFixture) -> None:
    client = tenant.web_client()

    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")

    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert client.get("/dashboard/").status_code == 302


def test_an_unknown_tenant_host_shows_not_found(tenant: TenantFixture) -> None:
    response = Client(HTTP_HOST="nobody.localhost").get("/")

    assert response.status_code == 404
    assert "Page not found" in response.content.decode()


def test_the_overview_shows_the_plan_the_counts_and_a_working_quick_start(tenant: TenantFixture) -> None:
    make_user(tenant, role=Role.MEMBER)
    revoked = create_api_key(tenant.tenant, name="old", scopes=[ApiKeyScope.READ])
    revoked.api_key.revoked_at = timezone.now()
    revoked.api_key.save(update_fields=["revoked_at"])

    response = tenant.web_client().get("/dashboard/")

    assert response.status_code == 200
    assert response.context["summary"] == DashboardSummary(member_count=2, active_key_count=1)
    content = response.content.decode()
    assert tenant.tenant.plan is not None
    assert f'<div class="stat-value">{tenant.tenant.plan.name}</div>' in content
    assert "http://alpha.localhost/v1" in content
    assert "curl http://alpha.localhost/v1/chat/completions" in content


def test_creating_a_key_shows_its_secret_once_and_the_key_works(tenant: TenantFixture) -> None:
    client = tenant.web_client()

    response = client.post(
        KEYS_PAGE,
        {
            "name": "backend",
            "scopes": ["admin", "inference"],
            "allowed_models": "gpt-4o-mini, , gpt-4o-mini, o3",
        },
    )

    assert response.status_code == 200
    secret = response.context["issued"].secret
    assert secret in response.content.decode()
    api_key = ApiKey.objects.get(tenant=tenant.tenant, name="backend")
    assert (api_key.scopes, api_key.allowed_models, api_key.expires_at, api_key.created_by) == (
        ["admin", "inference"],
        ["gpt-4o-mini", "o3"],
        None,
        tenant.owner_email,
    )
    assert response["Cache-Control"] == "max-age=0, no-cache, no-store, must-revalidate, private"
    assert secret not in client.get(KEYS_PAGE).content.decode()
    api_response = APIClient().get("/api/v1/keys", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api_response.status_code == 200
    assert api_key.pk in {item["id"] for item in api_response.json()["data"]}


def test_a_key_can_expire_at_a_chosen_time(tenant: TenantFixture) -> None:
    response = tenant.web_client().post(
        KEYS_PAGE, {"name": "temp", "scopes": ["read"], "expires_at": "2099-01-31T12:30"}
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

    response = browser_for(tenant, admin).post(KEYS_PAGE, {"name": "by-admin", "scopes": ["inference"]})

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
