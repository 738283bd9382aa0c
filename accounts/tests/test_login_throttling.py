"""Sign-in on a tenant's host is throttled per tenant: failures are counted for the
email and for the address, and past either limit every attempt is refused with
429 before the password is checked."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import redis
from django.test import Client

from accounts import throttling
from accounts.models import User
from accounts.tests.factories import make_user
from accounts.web.forms import TOO_MANY_SIGN_INS
from testing.tenants import TEST_PASSWORD, TenantFixture

INVALID_LOGIN = "Please enter a correct email and password. Note that both fields may be case-sensitive."


def fresh_address() -> str:
    return f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"


def fresh_email() -> str:
    return f"member-{secrets.token_hex(4)}@example.com"


def sign_in(tenant: TenantFixture, email: str, password: str, address: str) -> Any:
    return Client(HTTP_HOST=tenant.host, REMOTE_ADDR=address).post(
        "/login/", {"username": email, "password": password}
    )


def errors_of(response: Any) -> list[str]:
    return list(response.context["form"].non_field_errors())


def test_past_the_limit_even_the_right_password_is_refused(tenant: TenantFixture, settings: Any) -> None:
    settings.LOGIN_FAILURES_PER_USER = 3
    user = make_user(tenant, email=fresh_email())
    failures = [sign_in(tenant, user.email, "wrong-password", fresh_address()) for _ in range(3)]

    refused = sign_in(tenant, user.email, TEST_PASSWORD, fresh_address())

    assert [(failure.status_code, errors_of(failure)) for failure in failures] == [(200, [INVALID_LOGIN])] * 3
    assert refused.status_code == 429
    assert errors_of(refused) == [TOO_MANY_SIGN_INS]
    assert "_auth_user_id" not in refused.wsgi_request.session


def test_the_email_is_counted_per_tenant_and_other_members_are_not_locked_out(
    tenant: TenantFixture, other_tenant: TenantFixture, settings: Any
) -> None:
    settings.LOGIN_FAILURES_PER_USER = 2
    email = fresh_email()
    make_user(tenant, email=email)
    make_user(other_tenant, email=email)
    colleague = make_user(tenant, email=fresh_email())
    for _ in range(2):
        sign_in(tenant, email, "wrong-password", fresh_address())
    assert sign_in(tenant, email, TEST_PASSWORD, fresh_address()).status_code == 429

    on_another_tenant = sign_in(other_tenant, email, TEST_PASSWORD, fresh_address())
    colleague_signs_in = sign_in(tenant, colleague.email, TEST_PASSWORD, fresh_address())

    assert (on_another_tenant.status_code, on_another_tenant["Location"]) == (302, "/dashboard/")
    assert colleague_signs_in.status_code == 302


def test_failures_are_counted_per_address_across_emails(tenant: TenantFixture, settings: Any) -> None:
    settings.LOGIN_FAILURES_PER_IP = 3
    address = fresh_address()
    user = make_user(tenant, email=fresh_email())
    for _ in range(3):
        assert sign_in(tenant, fresh_email(), "guess", address).status_code == 200

    from_that_address = sign_in(tenant, user.email, TEST_PASSWORD, address)
    from_another = sign_in(tenant, user.email, TEST_PASSWORD, fresh_address())

    assert from_that_address.status_code == 429
    assert from_another.status_code == 302


def test_a_successful_sign_in_clears_the_emails_failures(tenant: TenantFixture, settings: Any) -> None:
    settings.LOGIN_FAILURES_PER_USER = 3
    user = make_user(tenant, email=fresh_email())
    statuses = []
    for _ in range(3):
        statuses += [
            sign_in(tenant, user.email, "wrong-password", fresh_address()).status_code for _ in range(2)
        ]
        statuses.append(sign_in(tenant, user.email, TEST_PASSWORD, fresh_address()).status_code)

    assert statuses == [200, 200, 302] * 3


def test_the_sign_in_page_links_to_password_reset(tenant: TenantFixture) -> None:
    response = Client(HTTP_HOST=tenant.host).get("/login/")

    assert 'href="/password-reset/"' in response.content.decode()


class UnreachableRedis:
    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> None:
            raise redis.ConnectionError("Redis is down")

        return fail


def test_without_redis_sign_in_fails_closed(tenant: TenantFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    user = make_user(tenant, email=fresh_email())
    monkeypatch.setattr(throttling, "cache", UnreachableRedis())

    refused = sign_in(tenant, user.email, TEST_PASSWORD, fresh_address())

    assert refused.status_code == 429
    assert errors_of(refused) == [TOO_MANY_SIGN_INS]


def test_the_admins_sign_in_is_throttled_apart_from_tenants(
    tenant: TenantFixture, db: None, settings: Any
) -> None:
    settings.LOGIN_FAILURES_PER_USER = 3
    email = fresh_email()
    User.objects.create_superuser(email, TEST_PASSWORD)
    make_user(tenant, email=email)

    def admin_sign_in(password: str) -> Any:
        client = Client(HTTP_HOST=settings.BASE_DOMAIN, REMOTE_ADDR=fresh_address())
        return client.post("/admin/login/?next=/admin/", {"username": email, "password": password})

    failures = [admin_sign_in("wrong-password") for _ in range(3)]
    refused = admin_sign_in(TEST_PASSWORD)
    on_the_tenant = sign_in(tenant, email, TEST_PASSWORD, fresh_address())

    assert [failure.status_code for failure in failures] == [200] * 3
    assert refused.status_code == 200
    assert errors_of(refused) == [TOO_MANY_SIGN_INS]
    assert "_auth_user_id" not in refused.wsgi_request.session
    assert on_the_tenant.status_code == 302
