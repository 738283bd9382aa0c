"""The tenant host: sign-in, sessions that stay on their host, and the overview."""

from __future__ import annotations

from django.test import Client
from django.utils import timezone

from accounts.models import Role
from accounts.selectors import DashboardSummary, compact_count, plan_limits_summary
from accounts.tests.factories import make_user
from billing.models import Plan
from tenants.models import ApiKeyScope
from tenants.services import create_api_key
from testing.tenants import TEST_PASSWORD, TenantFixture

KEYS_PAGE = "/dashboard/keys/"


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


ENTERPRISE_LIMITS = "6k rpm · 10M tpm per key; 30k rpm · 50M tpm per workspace; no monthly cap"


def test_the_overview_shows_the_plans_limits(tenant: TenantFixture) -> None:
    response = tenant.web_client().get("/dashboard/")

    assert response.status_code == 200
    assert f'<div class="small muted" id="plan-limits">{ENTERPRISE_LIMITS}</div>' in response.content.decode()


def test_a_plans_limits_read_compactly_and_without_a_plan_are_the_free_ones(db: None) -> None:
    free = "60 rpm · 100k tpm per key; 300 rpm · 500k tpm per workspace; 5M tokens and $10.00 a month"

    assert plan_limits_summary(Plan.objects.get(slug="free")) == free
    assert plan_limits_summary(None) == free
    assert plan_limits_summary(Plan.objects.get(slug="pro")) == (
        "600 rpm · 1M tpm per key; 3k rpm · 5M tpm per workspace; $1,000.00 a month"
    )


def test_counts_read_compactly_but_never_rounded() -> None:
    counts = [0, 999, 1_000, 1_500, 1_234, 100_000, 1_050_000, 10_000_000, 2_500_000_000, 2**31 - 1]

    assert [compact_count(count) for count in counts] == [
        "0",
        "999",
        "1k",
        "1.5k",
        "1,234",
        "100k",
        "1,050k",
        "10M",
        "2.5B",
        "2,147,483,647",
    ]
