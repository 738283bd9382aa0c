"""Signup on the public host: a new tenant whose owner verifies their email before
its keys work or the owner can sign in with a password (the signup's own
one-time sign-in: test_first_run.py), or a clear error and nothing created;
throttled per address and for the platform."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import httpx
import pytest
from django.core import mail
from django.test import Client
from django_tenants.utils import schema_exists, tenant_context
from rest_framework.test import APIClient

from accounts.models import User
from accounts.throttling import SIGNUPS_PER_IP
from tenants.models import ApiKey, Domain, Tenant
from tenants.services import SIGNUP_SCOPE, email_verification_url, provision_tenant, verify_tenant_email
from testing.database import committed
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
    ("host", "secure", "origin"),
    [
        ("localhost:8000", False, "http://newco.localhost:8000"),
        ("localhost", False, "http://newco.localhost"),
        ("localhost:8443", True, "https://newco.localhost:8443"),
    ],
)
def test_signup_creates_an_unverified_tenant_without_keys_and_emails_a_link_keeping_scheme_and_port(
    tenant: TenantFixture, host: str, secure: bool, origin: str
) -> None:
    response = Client(HTTP_HOST=host).post("/", signup_data(slug="NewCo"), secure=secure)

    assert response.status_code == 302
    assert response["Location"].startswith(f"{origin}/welcome/")
    created = Tenant.objects.get(slug="newco")
    assert not ApiKey.objects.filter(tenant=created).exists()
    assert (created.name, created.schema_name, created.is_active) == ("NewCo Ltd", "t_newco", True)
    assert created.email_verified_at is None
    assert Domain.objects.get(tenant=created).domain == "newco.localhost"
    assert schema_exists("t_newco")
    with tenant_context(created):
        owner = User.objects.get()
    assert (owner.email, owner.role, owner.check_password(PASSWORD)) == (
        "founder@newco.example",
        "owner",
        True,
    )
    [email] = mail.outbox
    assert email.to == ["founder@newco.example"]
    assert re.search(rf"^{re.escape(origin)}/verify-email/[^/\s]+/$", str(email.body), re.MULTILINE)


def test_the_owner_signs_in_only_after_opening_the_link(tenant: TenantFixture) -> None:
    Client(HTTP_HOST="localhost:8000").post("/", signup_data())
    browser = Client(HTTP_HOST="newco.localhost:8000")
    credentials = {"username": "founder@newco.example", "password": PASSWORD}

    refused = browser.post("/login/", credentials)

    assert refused.status_code == 200
    assert refused.context["form"].non_field_errors() == [
        "Confirm your email address first: we sent you a link. Open it, then sign in."
    ]
    assert len(mail.outbox) == 2  # signing in sent the link again
    assert browser.get("/dashboard/").status_code == 302

    opened = browser.get(verification_path(str(mail.outbox[-1].body)))

    assert (opened.status_code, opened["Location"]) == (302, "/login/")
    assert Tenant.objects.get(slug="newco").email_verified_at is not None
    assert browser.post("/login/", credentials).status_code == 302
    assert browser.get("/dashboard/").context["request"].tenant.slug == "newco"


def test_a_link_works_on_its_own_tenants_host_only(tenant: TenantFixture) -> None:
    Client(HTTP_HOST="localhost:8000").post("/", signup_data())
    path = verification_path(str(mail.outbox[0].body))

    on_another_host = Client(HTTP_HOST=tenant.host).get(path)

    assert on_another_host.status_code == 400
    assert "This link no longer works" in on_another_host.content.decode()
    assert Tenant.objects.get(slug="newco").email_verified_at is None


@pytest.mark.parametrize("spoil", ["tamper", "expire"])
def test_a_tampered_or_expired_link_verifies_nothing(
    tenant: TenantFixture, settings: Any, spoil: str
) -> None:
    Client(HTTP_HOST="localhost:8000").post("/", signup_data())
    path = verification_path(str(mail.outbox[0].body))
    if spoil == "tamper":
        path = path[:-3] + ("A" if path[-3] != "A" else "B") + path[-2:]
    else:
        settings.EMAIL_VERIFICATION_MAX_AGE_SECONDS = -1

    response = Client(HTTP_HOST="newco.localhost").get(path)

    assert response.status_code == 400
    assert Tenant.objects.get(slug="newco").email_verified_at is None


def test_an_unverified_tenants_key_is_refused_on_the_api_with_email_not_verified(
    tenant: TenantFixture,
) -> None:
    provisioned = provision_tenant(
        slug="newco", name="NewCo", owner_email="founder@newco.example", email_verified=False
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {provisioned.issued_key.secret}")

    response = client.get("/api/v1/keys")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "email_not_verified"


def test_an_unverified_tenants_key_is_refused_on_v1_until_the_link_is_opened(
    gateway: str, django_db_setup: object
) -> None:
    slug = f"unverified-{secrets.token_hex(3)}"
    provisioned = committed(
        lambda: provision_tenant(
            slug=slug, name="Unverified", owner_email=f"owner@{slug}.example", email_verified=False
        )
    )
    headers = {"Authorization": f"Bearer {provisioned.issued_key.secret}"}

    refused = httpx.get(f"{gateway}/models", headers=headers, timeout=10)
    token = email_verification_url(provisioned.tenant, "http://unused").rstrip("/").rsplit("/", 1)[1]
    assert committed(lambda: verify_tenant_email(provisioned.tenant, token))

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "email_not_verified"
    assert wait_for_status(f"{gateway}/models", headers, 200)


def wait_for_status(url: str, headers: dict[str, str], status: int) -> bool:
    """The gateway drops its cached copy when the verification is published: at once, give or take."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if httpx.get(url, headers=headers, timeout=10).status_code == status:
            return True
        time.sleep(0.05)
    return False


def test_signup_is_throttled_per_address(tenant: TenantFixture, settings: Any) -> None:
    settings.SIGNUPS_PER_IP_PER_HOUR = 2
    browser = Client(HTTP_HOST="localhost:8000", REMOTE_ADDR=fresh_address())
    for _ in range(2):  # a taken slug is an attempt all the same
        assert browser.post("/", signup_data(slug="alpha")).status_code == 200
    before = snapshot()

    refused = browser.post("/", signup_data())

    assert refused.status_code == 429
    assert refused.context["form"].non_field_errors() == [
        "Too many signups from your network: try again in an hour."
    ]
    assert snapshot() == before
    assert mail.outbox == []
    other_address = Client(HTTP_HOST="localhost:8000", REMOTE_ADDR=fresh_address())
    assert other_address.post("/", signup_data()).status_code == 302
    assert Tenant.objects.filter(slug="newco").exists()


def test_signup_is_throttled_for_the_whole_platform(tenant: TenantFixture, settings: Any) -> None:
    settings.SIGNUPS_PER_HOUR = 1
    first = Client(HTTP_HOST="localhost:8000", REMOTE_ADDR=fresh_address())
    assert first.post("/", signup_data()).status_code == 302
    before = snapshot()

    refused = Client(HTTP_HOST="localhost:8000", REMOTE_ADDR=fresh_address()).post(
        "/", signup_data(slug="later", owner_email="founder@later.example")
    )

    assert refused.status_code == 429
    assert refused.context["form"].non_field_errors() == [
        "We are taking too many signups right now: try again in an hour."
    ]
    assert snapshot() == before
    assert len(mail.outbox) == 1


def fresh_address() -> str:
    """An address with no signups counted (Redis outlives the test's transaction)."""
    address = f"198.51.100.{secrets.randbelow(256)}"
    SIGNUPS_PER_IP.reset(SIGNUP_SCOPE, address)
    return address


def verification_path(body: str) -> str:
    match = re.search(r"https?://[^/\s]+(/verify-email/[^/\s]+/)", body)
    assert match is not None, body
    return match.group(1)


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
