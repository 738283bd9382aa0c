"""Signup on the public host: a new tenant, or a clear error and nothing created."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import schema_exists, tenant_context

from accounts.models import User
from tenants.models import ApiKey, Domain, Tenant
from testing.tenants import TenantFixture

PASSWORD = "a-long-and-unusual-passphrase"


def signup_data(**overrides: str) -> dict[str, str]:
    return {
        "name": "NewCo Ltd",
        "slug": "newco",
        "owner_email": "founder@newco.example",
        "password": PASSWORD,
        "password_confirmation": PASSWORD,
        **overrides,
    }


def snapshot() -> tuple[int, int, int]:
    return Tenant.objects.count(), Domain.objects.count(), ApiKey.objects.count()


def test_the_home_page_pitches_the_product_and_shows_the_signup_form(tenant: TenantFixture) -> None:
    response = Client(HTTP_HOST="localhost:8000").get("/")

    assert response.status_code == 200
    content = response.content.decode()
    assert "Create your workspace" in content
    assert list(response.context["form"].fields) == [
        "name",
        "slug",
        "owner_email",
        "password",
        "password_confirmation",
    ]
    assert "<span>.localhost</span>" in content


@pytest.mark.parametrize(
    ("host", "secure", "login_url"),
    [
        ("localhost:8000", False, "http://newco.localhost:8000/login/"),
        ("localhost", False, "http://newco.localhost/login/"),
        ("localhost:8443", True, "https://newco.localhost:8443/login/"),
    ],
)
def test_signup_creates_the_tenant_and_redirects_to_its_login_keeping_scheme_and_port(
    tenant: TenantFixture, host: str, secure: bool, login_url: str
) -> None:
    response = Client(HTTP_HOST=host).post("/", signup_data(slug="NewCo"), secure=secure)

    assert response.status_code == 302
    assert response["Location"] == login_url
    created = Tenant.objects.get(slug="newco")
    assert (created.name, created.schema_name, created.is_active) == ("NewCo Ltd", "t_newco", True)
    assert Domain.objects.get(tenant=created).domain == "newco.localhost"
    assert schema_exists("t_newco")
    with tenant_context(created):
        owner = User.objects.get()
    assert (owner.email, owner.role, owner.check_password(PASSWORD)) == (
        "founder@newco.example",
        "owner",
        True,
    )


def test_the_new_owner_signs_in_on_the_new_subdomain(tenant: TenantFixture) -> None:
    Client(HTTP_HOST="localhost:8000").post("/", signup_data())
    browser = Client(HTTP_HOST="newco.localhost:8000")

    response = browser.post("/login/", {"username": "founder@newco.example", "password": PASSWORD})

    assert response.status_code == 302
    assert browser.get("/dashboard/").context["request"].tenant.slug == "newco"


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"slug": "alpha"}, {"slug": ["Slug 'alpha' is taken."]}),
        ({"slug": "admin"}, {"slug": ["Slug 'admin' is reserved."]}),
        (
            {"slug": "no_underscores"},
            {
                "slug": [
                    "Invalid slug 'no_underscores': use 1-32 lowercase letters, digits and single hyphens, "
                    "starting with a letter and not ending with a hyphen."
                ]
            },
        ),
        ({"owner_email": "founder-at-newco"}, {"owner_email": ["Enter a valid email address."]}),
        (
            {"password": "12345678", "password_confirmation": "12345678"},
            {
                "password": [
                    "This password is too short. It must contain at least 10 characters.",
                    "This password is too common.",
                    "This password is entirely numeric.",
                ]
            },
        ),
        (
            {"password_confirmation": PASSWORD + "!"},
            {"password_confirmation": ["The two passwords do not match."]},
        ),
        ({"name": "  "}, {"name": ["This field is required."]}),
    ],
)
def test_signup_shows_the_error_and_creates_nothing(
    tenant: TenantFixture, fields: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    before = snapshot()

    response = Client(HTTP_HOST="localhost:8000").post("/", signup_data(**fields))

    assert response.status_code == 200
    assert response.context["form"].errors == errors
    for message in errors[next(iter(errors))]:
        assert message.replace("'", "&#x27;") in response.content.decode()
    assert snapshot() == before
    assert not schema_exists("t_newco")


def test_signup_refuses_a_post_without_the_csrf_token(tenant: TenantFixture) -> None:
    before = snapshot()

    response = Client(HTTP_HOST="localhost:8000", enforce_csrf_checks=True).post("/", signup_data())

    assert response.status_code == 403
    assert snapshot() == before
