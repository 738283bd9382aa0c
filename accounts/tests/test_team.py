"""The team page: invitations, roles and removals, and the rules that keep an owner."""

from __future__ import annotations

import re
from collections.abc import Sequence

from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.test import Client, override_settings
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.models import Role, User
from accounts.tests.factories import browser_for, make_user, user_exists, user_of
from testing.tenants import TEST_PASSWORD, TenantFixture

TEAM_PAGE = "/dashboard/team/"
NEW_PASSWORD = "a-fresh-passphrase-42"
INVITE_LINK = re.compile(r"http://alpha\.localhost/invite/[^/\s]+/[^/\s]+/")


def role_url(user: User) -> str:
    return f"/dashboard/team/{user.pk}/role/"


def remove_url(user: User) -> str:
    return f"/dashboard/team/{user.pk}/remove/"


def invite_links_in_email() -> list[str]:
    return INVITE_LINK.findall(str(mail.outbox[0].body))


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_the_team_page_lists_members_with_their_roles(tenant: TenantFixture) -> None:
    make_user(tenant, email="dev@alpha.example", role=Role.MEMBER)

    response = tenant.web_client().get(TEAM_PAGE)

    assert response.status_code == 200
    rows = [
        (member.user.email, member.user.role, member.has_accepted) for member in response.context["members"]
    ]
    assert rows == [("dev@alpha.example", "member", True), (tenant.owner_email, "owner", True)]


def test_an_invited_member_sets_a_password_through_the_emailed_link_and_is_signed_in(
    tenant: TenantFixture,
) -> None:
    response = tenant.web_client().post(TEAM_PAGE, {"email": "New@Alpha.example", "role": "admin"})

    assert response.status_code == 200
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["new@alpha.example"]
    assert mail.outbox[0].subject == "You're invited to Alpha Corp on aiaas"
    links = invite_links_in_email()
    assert len(links) == 1
    assert response.context["invitation"].accept_url == links[0]
    assert links[0] in response.content.decode()
    invited = user_of(tenant, email="new@alpha.example")
    assert (invited.role, invited.is_active, invited.has_usable_password()) == ("admin", True, False)

    browser = Client(HTTP_HOST=tenant.host)
    form_page = browser.get(links[0], follow=True)
    assert form_page.status_code == 200
    assert form_page.context["validlink"] is True
    accepted = browser.post(
        form_page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )

    assert accepted.status_code == 302
    assert accepted["Location"] == "/dashboard/"
    dashboard = browser.get("/dashboard/")
    assert dashboard.status_code == 200
    assert dashboard.context["user"].email == "new@alpha.example"
    assert user_of(tenant, email="new@alpha.example").check_password(NEW_PASSWORD)


def test_an_invitation_link_works_once(tenant: TenantFixture) -> None:
    tenant.web_client().post(TEAM_PAGE, {"email": "once@alpha.example", "role": "member"})
    link = invite_links_in_email()[0]
    first = Client(HTTP_HOST=tenant.host)
    set_password_url = first.get(link)["Location"]
    first.post(set_password_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    again = Client(HTTP_HOST=tenant.host).get(link, follow=True)

    assert again.status_code == 200
    assert again.context["validlink"] is False
    assert "This invitation link no longer works" in again.content.decode()


def test_an_invitation_refuses_a_weak_password(tenant: TenantFixture) -> None:
    tenant.web_client().post(TEAM_PAGE, {"email": "weak@alpha.example", "role": "member"})
    browser = Client(HTTP_HOST=tenant.host)
    set_password_url = browser.get(invite_links_in_email()[0])["Location"]

    response = browser.post(set_password_url, {"new_password1": "password", "new_password2": "password"})

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "new_password2": [
            "This password is too short. It must contain at least 10 characters.",
            "This password is too common.",
        ]
    }
    assert user_of(tenant, email="weak@alpha.example").has_usable_password() is False


def test_an_invited_member_cannot_sign_in_before_setting_a_password(tenant: TenantFixture) -> None:
    tenant.web_client().post(TEAM_PAGE, {"email": "later@alpha.example", "role": "member"})

    response = Client(HTTP_HOST=tenant.host).post(
        "/login/", {"username": "later@alpha.example", "password": ""}
    )

    assert response.status_code == 200
    assert response.context["form"].is_valid() is False


def test_an_invitation_link_cannot_reset_an_existing_password(tenant: TenantFixture) -> None:
    owner = user_of(tenant, email=tenant.owner_email)
    uidb64 = urlsafe_base64_encode(force_bytes(owner.pk))
    browser = Client(HTTP_HOST=tenant.host)

    response = browser.get(f"/invite/{uidb64}/{default_token_generator.make_token(owner)}/", follow=True)

    assert response.context["validlink"] is False
    assert user_of(tenant, email=tenant.owner_email).check_password(TEST_PASSWORD)


def test_inviting_an_existing_member_is_a_form_error(tenant: TenantFixture) -> None:
    response = tenant.web_client().post(TEAM_PAGE, {"email": tenant.owner_email.upper(), "role": "member"})

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        f"{tenant.owner_email.upper()} is already a member of this team."
    ]
    assert response.context["invitation"] is None
    assert mail.outbox == []


def test_inviting_with_an_invalid_email_is_a_form_error(tenant: TenantFixture) -> None:
    response = tenant.web_client().post(TEAM_PAGE, {"email": "not-an-email", "role": "member"})

    assert response.status_code == 200
    assert response.context["form"].errors == {"email": ["Enter a valid email address."]}
    assert mail.outbox == []


def test_inviting_an_email_longer_than_an_account_holds_is_a_form_error(tenant: TenantFixture) -> None:
    email = "x" * 250 + "@alpha.example"

    response = tenant.web_client().post(TEAM_PAGE, {"email": email, "role": "member"})

    assert response.status_code == 200
    assert list(response.context["form"].errors) == ["email"]
    assert not user_exists(tenant, email=email)


def test_a_member_cannot_invite_change_roles_or_remove(tenant: TenantFixture) -> None:
    member = make_user(tenant, role=Role.MEMBER)
    colleague = make_user(tenant, role=Role.MEMBER)
    client = browser_for(tenant, member)

    page = client.get(TEAM_PAGE)
    invite = client.post(TEAM_PAGE, {"email": "friend@alpha.example", "role": "admin"})
    promote = client.post(role_url(member), {"role": "owner"})
    remove = client.post(remove_url(colleague))

    assert page.status_code == 200
    assert "Invite someone" not in page.content.decode()
    assert (invite.status_code, promote.status_code, remove.status_code) == (403, 403, 403)
    assert user_exists(tenant, email="friend@alpha.example") is False
    assert user_of(tenant, pk=member.pk).role == "member"
    assert user_exists(tenant, pk=colleague.pk) is True
    assert mail.outbox == []


def test_an_owner_changes_a_members_role(tenant: TenantFixture) -> None:
    member = make_user(tenant, role=Role.MEMBER)

    response = tenant.web_client().post(role_url(member), {"role": "admin"}, follow=True)

    assert response.redirect_chain == [(TEAM_PAGE, 302)]
    assert messages_of(response) == [f"{member.email} now has the role Admin."]
    assert user_of(tenant, pk=member.pk).role == "admin"


def test_the_only_owner_cannot_step_down(tenant: TenantFixture) -> None:
    owner = user_of(tenant, email=tenant.owner_email)

    response = tenant.web_client().post(role_url(owner), {"role": "admin"}, follow=True)

    assert messages_of(response) == ["The team needs at least one owner: make someone else an owner first."]
    assert user_of(tenant, pk=owner.pk).role == "owner"


def test_an_owner_may_step_down_when_another_owner_remains(tenant: TenantFixture) -> None:
    owner = user_of(tenant, email=tenant.owner_email)
    make_user(tenant, role=Role.OWNER)

    tenant.web_client().post(role_url(owner), {"role": "member"})

    assert user_of(tenant, pk=owner.pk).role == "member"


def test_nobody_can_remove_themselves(tenant: TenantFixture) -> None:
    owner = user_of(tenant, email=tenant.owner_email)
    admin = make_user(tenant, role=Role.ADMIN)

    by_owner = tenant.web_client().post(remove_url(owner), follow=True)
    by_admin = browser_for(tenant, admin).post(remove_url(admin), follow=True)

    assert messages_of(by_owner) == ["You cannot remove yourself from the team."]
    assert messages_of(by_admin) == ["You cannot remove yourself from the team."]
    assert user_exists(tenant, pk=owner.pk) is True
    assert user_exists(tenant, pk=admin.pk) is True


def test_an_admin_cannot_remove_demote_or_appoint_an_owner(tenant: TenantFixture) -> None:
    owner = user_of(tenant, email=tenant.owner_email)
    member = make_user(tenant, role=Role.MEMBER)
    client = browser_for(tenant, make_user(tenant, role=Role.ADMIN))

    removal = client.post(remove_url(owner), follow=True)
    demotion = client.post(role_url(owner), {"role": "member"}, follow=True)
    promotion = client.post(role_url(member), {"role": "owner"}, follow=True)
    invitation = client.post(TEAM_PAGE, {"email": "boss@alpha.example", "role": "owner"})

    assert messages_of(removal) == ["Only an owner can change or remove an owner."]
    assert messages_of(demotion) == ["Only an owner can change or remove an owner."]
    assert messages_of(promotion) == ["Only an owner can make someone an owner."]
    assert invitation.context["form"].non_field_errors() == ["Only an owner can make someone an owner."]
    assert user_of(tenant, pk=owner.pk).role == "owner"
    assert user_of(tenant, pk=member.pk).role == "member"
    assert user_exists(tenant, email="boss@alpha.example") is False


def test_removing_a_member_ends_their_sessions(tenant: TenantFixture) -> None:
    member = make_user(tenant, role=Role.MEMBER)
    member_browser = browser_for(tenant, member)

    response = tenant.web_client().post(remove_url(member), follow=True)

    assert messages_of(response) == ["Removed the member. Their sessions no longer work."]
    assert user_exists(tenant, pk=member.pk) is False
    assert member_browser.get("/dashboard/")["Location"] == "/login/?next=/dashboard/"


def test_a_user_id_of_another_tenant_is_a_404(tenant: TenantFixture, other_tenant: TenantFixture) -> None:
    outsider = make_user(other_tenant, role=Role.MEMBER)
    assert user_exists(tenant, pk=outsider.pk) is False
    client = tenant.web_client()

    removal = client.post(remove_url(outsider))
    promotion = client.post(role_url(outsider), {"role": "admin"})

    assert (removal.status_code, promotion.status_code) == (404, 404)
    assert user_of(other_tenant, pk=outsider.pk).role == "member"


class RefusingEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        raise ConnectionRefusedError("no SMTP server")


def test_an_invitation_survives_a_failed_email_and_shows_its_link(tenant: TenantFixture) -> None:
    client = tenant.web_client()

    with override_settings(EMAIL_BACKEND=f"{__name__}.RefusingEmailBackend"):
        response = client.post(TEAM_PAGE, {"email": "offline@alpha.example", "role": "member"})

    assert response.status_code == 200
    invitation = response.context["invitation"]
    assert invitation.emailed is False
    assert INVITE_LINK.fullmatch(invitation.accept_url)
    assert invitation.accept_url in response.content.decode()
    assert messages_of(response) == ["Invited offline@alpha.example, but the email failed: send the link."]
    assert user_exists(tenant, email="offline@alpha.example") is True
