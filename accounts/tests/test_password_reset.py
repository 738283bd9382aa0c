"""Password reset on a tenant's host: a link by email that works once, on that
host only, for an active member with a password; throttled per email and address."""

from __future__ import annotations

import re
import secrets
from typing import Any

from django.core import mail
from django.test import Client
from django_tenants.utils import tenant_context

from accounts.models import User
from accounts.tests.factories import make_user
from accounts.web.forms import TOO_MANY_RESETS
from testing.tenants import TEST_PASSWORD, TenantFixture

NEW_PASSWORD = "a-brand-new-passphrase-42"
NEW_PASSWORDS = {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}


def fresh_email() -> str:
    return f"forgetful-{secrets.token_hex(4)}@example.com"


def fresh_address() -> str:
    return f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"


def ask_for_reset(tenant: TenantFixture, email: str, address: str | None = None) -> Any:
    client = Client(HTTP_HOST=tenant.host, REMOTE_ADDR=address or fresh_address())
    return client.post("/password-reset/", {"email": email})


def reset_path(body: str, host: str) -> str:
    match = re.search(rf"http://{re.escape(host)}(/reset/[^/\s]+/[^/\s]+/)", body)
    assert match is not None, body
    return match.group(1)


def password_of(tenant: TenantFixture, user: User, password: str) -> bool:
    with tenant_context(tenant.tenant):
        return User.objects.get(pk=user.pk).check_password(password)


def test_a_member_resets_their_password_from_a_link_on_their_host(tenant: TenantFixture) -> None:
    user = make_user(tenant, email=fresh_email())
    assert Client(HTTP_HOST=tenant.host).get("/password-reset/").status_code == 200

    asked = ask_for_reset(tenant, user.email)

    assert (asked.status_code, asked["Location"]) == (302, "/password-reset/sent/")
    [email] = mail.outbox
    assert email.to == [user.email]
    browser = Client(HTTP_HOST=tenant.host)
    form_page = browser.get(reset_path(str(email.body), tenant.host), follow=True)
    assert form_page.context["validlink"] is True
    changed = browser.post(form_page.redirect_chain[-1][0], NEW_PASSWORDS)
    assert (changed.status_code, changed["Location"]) == (302, "/login/")
    assert password_of(tenant, user, NEW_PASSWORD)
    signed_in = Client(HTTP_HOST=tenant.host).post(
        "/login/", {"username": user.email, "password": NEW_PASSWORD}
    )
    assert signed_in.status_code == 302


def test_a_link_works_once(tenant: TenantFixture) -> None:
    user = make_user(tenant, email=fresh_email())
    ask_for_reset(tenant, user.email)
    path = reset_path(str(mail.outbox[0].body), tenant.host)
    first = Client(HTTP_HOST=tenant.host)
    page = first.get(path, follow=True)
    first.post(page.redirect_chain[-1][0], NEW_PASSWORDS)

    again = Client(HTTP_HOST=tenant.host).get(path, follow=True)

    assert again.context["validlink"] is False
    assert "This reset link no longer works" in again.content.decode()


def test_an_unknown_email_gets_the_same_answer_and_no_email(tenant: TenantFixture) -> None:
    asked = ask_for_reset(tenant, fresh_email())

    assert (asked.status_code, asked["Location"]) == (302, "/password-reset/sent/")
    assert mail.outbox == []


def test_a_member_of_another_tenant_gets_no_email_here(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    outsider = make_user(other_tenant, email=fresh_email())

    asked = ask_for_reset(tenant, outsider.email)

    assert asked.status_code == 302
    assert mail.outbox == []


def test_a_link_made_for_one_tenant_does_nothing_on_another_tenants_host(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    user = make_user(tenant, email=fresh_email())
    # The same id and email in the other tenant's schema: only the host tells them apart.
    twin = make_user(other_tenant, pk=user.pk, email=user.email)
    ask_for_reset(tenant, user.email)
    path = reset_path(str(mail.outbox[0].body), tenant.host)
    browser = Client(HTTP_HOST=other_tenant.host)

    page = browser.get(path, follow=True)
    forced = browser.post(
        path.rsplit("/", 2)[0] + "/set-password/",
        NEW_PASSWORDS,
    )

    assert page.context["validlink"] is False
    assert forced.status_code == 200
    assert password_of(other_tenant, twin, TEST_PASSWORD)
    assert password_of(tenant, user, TEST_PASSWORD)


def test_reset_requests_are_throttled_per_email(tenant: TenantFixture, settings: Any) -> None:
    settings.PASSWORD_RESETS_PER_EMAIL_PER_HOUR = 2
    user = make_user(tenant, email=fresh_email())
    for _ in range(2):
        assert ask_for_reset(tenant, user.email).status_code == 302

    refused = ask_for_reset(tenant, user.email)

    assert refused.status_code == 429
    assert refused.context["form"].errors == {"email": [TOO_MANY_RESETS]}
    assert len(mail.outbox) == 2


def test_reset_requests_are_throttled_per_address(tenant: TenantFixture, settings: Any) -> None:
    settings.PASSWORD_RESETS_PER_IP_PER_HOUR = 2
    address = fresh_address()
    user = make_user(tenant, email=fresh_email())
    for _ in range(2):
        ask_for_reset(tenant, fresh_email(), address)

    refused = ask_for_reset(tenant, user.email, address)

    assert refused.status_code == 429
    assert mail.outbox == []
