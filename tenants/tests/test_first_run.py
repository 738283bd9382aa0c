"""First run: signup lands the owner signed in on the new workspace through a
one-time login token, with no key made behind their back, and the overview's
three steps ticked from what happened (docs/decisions/0032)."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts import login_tokens
from accounts.models import User
from accounts.services import TeamError, invite_member
from billing.models import UsageEvent
from gateway.errors import GatewayError
from gateway.transports.inprocess import InProcessGateway
from tenants.models import ApiKey, ApiKeyScope, Tenant
from tenants.selectors import find_usable_api_key
from tenants.services import create_api_key, provision_tenant
from tenants.tests.test_signup import PASSWORD, signup_data
from testing.database import committed
from testing.tenants import TenantFixture

PUBLIC_HOST = "localhost:8000"
NEW_HOST = "newco.localhost:8000"


def sign_up(**fields: str) -> str:
    """Sign up on the public host; the path of the welcome link on the new host."""
    response = Client(HTTP_HOST=PUBLIC_HOST).post("/", signup_data(**fields))
    assert response.status_code == 302, response.content
    origin, _, path = response["Location"].partition(f"//{NEW_HOST}")
    assert origin == "http:", response["Location"]
    assert path.startswith("/welcome/"), response["Location"]
    return path


def test_signup_lands_the_owner_signed_in_on_the_new_workspace(tenant: TenantFixture) -> None:
    browser = Client(HTTP_HOST=NEW_HOST)

    welcomed = browser.get(sign_up())
    overview = browser.get(welcomed["Location"])

    assert (welcomed.status_code, welcomed["Location"]) == (302, "/dashboard/")
    assert welcomed["Cache-Control"].startswith("max-age=0, no-cache, no-store")
    assert overview.status_code == 200
    assert overview.context["user"].email == "founder@newco.example"
    assert overview.context["request"].tenant.slug == "newco"
    content = overview.content.decode()
    assert 'id="first-run-progress">0 of 3 done<' in content
    assert 'id="email-unverified"' in content
    assert "Welcome to NewCo Ltd." in content


def test_signup_makes_no_key_whose_secret_nobody_saw(tenant: TenantFixture) -> None:
    browser = Client(HTTP_HOST=NEW_HOST)
    browser.get(sign_up())

    overview = browser.get("/dashboard/")

    assert not ApiKey.objects.filter(tenant__slug="newco").exists()
    assert overview.context["summary"].active_key_count == 0


def test_a_welcome_link_works_once(tenant: TenantFixture) -> None:
    path = sign_up()
    Client(HTTP_HOST=NEW_HOST).get(path)
    replayed_by = Client(HTTP_HOST=NEW_HOST)

    replayed = replayed_by.get(path)

    assert replayed.status_code == 400
    assert "This link no longer works" in replayed.content.decode()
    assert replayed_by.get("/dashboard/").status_code == 302


def test_a_welcome_link_expires(tenant: TenantFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    path = sign_up()
    monkeypatch.setattr(login_tokens, "LOGIN_TOKEN_SECONDS", -1)

    response = Client(HTTP_HOST=NEW_HOST).get(path)

    assert response.status_code == 400


def test_a_welcome_link_works_on_its_own_tenants_host_only(tenant: TenantFixture) -> None:
    path = sign_up()
    elsewhere = Client(HTTP_HOST=tenant.host)

    refused = elsewhere.get(path)

    assert refused.status_code == 400
    assert elsewhere.get("/dashboard/").status_code == 302
    assert Client(HTTP_HOST=NEW_HOST).get(path).status_code == 302  # not used up by the refusal


@pytest.mark.parametrize("spoil", ["tamper", "garbage"])
def test_a_forged_welcome_link_signs_nobody_in(tenant: TenantFixture, spoil: str) -> None:
    path = sign_up()
    token = path.removeprefix("/welcome/").rstrip("/")
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB") if spoil == "tamper" else "x" * 40
    browser = Client(HTTP_HOST=NEW_HOST)

    response = browser.get(f"/welcome/{forged}/")

    assert response.status_code == 400
    assert browser.get("/dashboard/").status_code == 302


def test_a_token_is_bound_to_its_user(tenant: TenantFixture) -> None:
    """A token minted for a user id that the host's schema does not hold signs nobody in."""
    token = login_tokens.mint_login_token(tenant.tenant, 10**9)
    browser = Client(HTTP_HOST=tenant.host)

    response = browser.get(f"/welcome/{token}/")

    assert response.status_code == 400
    assert browser.get("/dashboard/").status_code == 302


def test_the_password_sign_in_still_waits_for_the_email_link(tenant: TenantFixture) -> None:
    sign_up()

    refused = Client(HTTP_HOST=NEW_HOST).post(
        "/login/", {"username": "founder@newco.example", "password": PASSWORD}
    )

    assert refused.status_code == 200
    assert refused.context["form"].has_error("__all__", "email_not_verified")


def test_an_unverified_owner_cannot_invite_anyone(tenant: TenantFixture) -> None:
    browser = Client(HTTP_HOST=NEW_HOST)
    browser.get(sign_up())

    response = browser.post("/dashboard/team/", {"email": "someone@example.com", "role": "member"})

    assert response.status_code == 200
    assert "Confirm your email address first" in response.content.decode()
    newco = Tenant.objects.get(slug="newco")
    with pytest.raises(TeamError):
        invite_member(
            newco,
            email="other@example.com",
            role="member",
            invited_by=User(email="x@example.com"),
            site_url="http://x",
        )


def test_no_model_is_called_for_an_unverified_tenant_in_process(
    platform_url: str, django_db_setup: object
) -> None:
    """The dashboard's playground and agent runs call the gateway without key
    authentication; the chat service itself refuses an unverified tenant."""
    slug = f"unverified-{secrets.token_hex(3)}"
    provisioned = committed(
        lambda: provision_tenant(
            slug=slug, name="Unverified", owner_email=f"owner@{slug}.example", email_verified=False
        )
    )
    api_key = find_usable_api_key(provisioned.issued_key.secret)
    assert api_key is not None

    async def call() -> None:
        gateway = InProcessGateway()
        try:
            request = {"model": "sim-small", "messages": [{"role": "user", "content": "Hi"}]}
            await gateway.chat(api_key, request, f"req_{uuid.uuid4().hex}")
        finally:
            await gateway.aclose()

    with pytest.raises(GatewayError) as refused:
        asyncio.run(call())

    assert (refused.value.status, refused.value.code) == (403, "email_not_verified")


def test_the_checklist_is_ticked_from_what_happened(tenant: TenantFixture) -> None:
    ApiKey.objects.filter(tenant=tenant.tenant).update(revoked_at=timezone.now())
    client = tenant.web_client()

    def steps() -> tuple[bool, bool, bool]:
        first_run = client.get("/dashboard/").context["first_run"]
        return (first_run.has_key, first_run.has_request, first_run.has_api_call)

    nothing = steps()
    issued = create_api_key(tenant.tenant, name="first", scopes=[ApiKeyScope.ADMIN])
    with_key = steps()
    add_request(tenant, issued.api_key)
    with_request = steps()
    assert tenant.api_client(issued.secret).get("/api/v1/keys").status_code == 200
    with_call = steps()

    assert [nothing, with_key, with_request, with_call] == [
        (False, False, False),
        (True, False, False),
        (True, True, False),
        (True, True, True),
    ]
    assert 'id="first-run-progress">3 of 3 done<' in client.get("/dashboard/").content.decode()


def test_step_three_shows_copyable_snippets_with_the_tenants_base_url(tenant: TenantFixture) -> None:
    content = tenant.web_client().get("/dashboard/").content.decode()

    base_url = f"http://{tenant.host}/v1"
    assert f"curl {base_url}/chat/completions" in content
    assert f'OpenAI(base_url="{base_url}"' in content
    assert 'data-copy="#snippet-curl"' in content
    assert 'data-copy="#snippet-python"' in content


def add_request(tenant: TenantFixture, api_key: ApiKey, **fields: Any) -> None:
    UsageEvent.objects.create(
        request_id=f"req_{uuid.uuid4().hex}",
        tenant=tenant.tenant,
        api_key=api_key,
        model="sim-small",
        cost_usd=Decimal("0.0001"),
        status=200,
        created_at=timezone.now(),
        **fields,
    )


def test_the_signed_in_owner_can_have_the_link_sent_again(tenant: TenantFixture) -> None:
    browser = Client(HTTP_HOST=NEW_HOST)
    browser.get(sign_up())
    assert len(mail.outbox) == 1

    response = browser.post("/dashboard/verification/resend/", follow=True)

    assert response.redirect_chain == [("/dashboard/", 302)]
    assert "We sent the link again to founder@newco.example." in response.content.decode()
    assert len(mail.outbox) == 2
    assert "http://newco.localhost:8000/verify-email/" in str(mail.outbox[-1].body)


def test_a_verified_workspace_has_no_banner_and_sends_nothing(tenant: TenantFixture) -> None:
    client = tenant.web_client()

    overview = client.get("/dashboard/")
    response = client.post("/dashboard/verification/resend/", follow=True)

    assert 'id="email-unverified"' not in overview.content.decode()
    assert "Your email address is already confirmed." in response.content.decode()
    assert mail.outbox == []
