"""Writes for a tenant's team: invitations, role changes and removals.

Every service takes the tenant and runs inside its schema, so a caller cannot
reach another tenant's users by passing an id. Team rules:

- only owners and admins manage the team; only an owner may grant the owner
  role or change or remove an owner;
- nobody removes themselves, and a tenant always keeps at least one owner.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.tokens import PasswordResetTokenGenerator, default_token_generator
from django.core.exceptions import PermissionDenied
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django_tenants.utils import tenant_context

from accounts.models import Role, User
from accounts.throttling import (
    LOGIN_FAILURES_PER_IP,
    LOGIN_FAILURES_PER_USER,
    PASSWORD_RESETS_PER_EMAIL,
    PASSWORD_RESETS_PER_IP,
    tenant_scope,
)
from tenants.context import current_schema_name
from tenants.models import Tenant

logger = logging.getLogger(__name__)


class TeamError(Exception):
    """A team change broke a rule; the message is one line for the user."""


@dataclass(frozen=True)
class Invitation:
    member: User
    accept_url: str  # one-time: valid until the member sets a password
    emailed: bool


@dataclass(frozen=True)
class LockedTeam:
    actor: User
    member: User
    owner_count: int


def invite_member(tenant: Tenant, *, email: str, role: str, invited_by: User, site_url: str) -> Invitation:
    """Create an active member with an unusable password and email them a link
    (under `site_url`, the tenant host's origin) to set one.

    Raises TeamError if the email already belongs to a member, the inviter may
    not grant `role`, or the owner's email is not confirmed yet (so a stranger's
    signup cannot send mail to anyone). A failed email does not undo the
    invitation: the link is returned either way, with `emailed` telling whether
    it was sent.
    """
    if not tenant.is_email_verified:
        raise TeamError("Confirm your email address first (we sent you a link), then invite your team.")
    with tenant_context(tenant):
        ensure_may_grant(invited_by, role)
        try:
            with transaction.atomic():
                member = User.objects.create_user(email, password=None, role=role)
        except IntegrityError:
            raise TeamError(f"{email} is already a member of this team.") from None
        accept_url = site_url.rstrip("/") + accept_invite_path(member)
    emailed = send_invitation(tenant, member=member, accept_url=accept_url, invited_by=invited_by)
    return Invitation(member=member, accept_url=accept_url, emailed=emailed)


def change_role(tenant: Tenant, *, member_id: int, role: str, changed_by: User) -> User:
    """Give a member of `tenant` a new role.

    Raises User.DoesNotExist for an unknown id, PermissionDenied if `changed_by`
    may not manage the team, and TeamError if the change breaks a team rule.
    """
    with tenant_context(tenant), transaction.atomic():
        team = lock_team(actor_id=changed_by.pk, member_id=member_id)
        ensure_may_manage(team.actor, team.member)
        ensure_may_grant(team.actor, role)
        if role != Role.OWNER:
            ensure_an_owner_remains(team)
        team.member.role = role
        team.member.save(update_fields=["role"])
        return team.member


def remove_member(tenant: Tenant, *, member_id: int, removed_by: User) -> None:
    """Delete a member of `tenant`; their sessions stop authenticating.

    Raises User.DoesNotExist for an unknown id, PermissionDenied if `removed_by`
    may not manage the team, and TeamError if the removal breaks a team rule.
    """
    with tenant_context(tenant), transaction.atomic():
        team = lock_team(actor_id=removed_by.pk, member_id=member_id)
        if team.actor.pk == team.member.pk:
            raise TeamError("You cannot remove yourself from the team.")
        ensure_may_manage(team.actor, team.member)
        ensure_an_owner_remains(team)
        team.member.delete()


def lock_team(*, actor_id: int, member_id: int) -> LockedTeam:
    """Lock the actor, the member and every owner in one statement, in id order.

    Concurrent changes queue on these row locks, so two owners demoting each
    other at once cannot leave the tenant without one.
    """
    rows = {
        user.pk: user
        for user in User.objects.select_for_update()
        .filter(Q(role=Role.OWNER) | Q(pk__in=[actor_id, member_id]))
        .order_by("pk")
    }
    if actor_id not in rows:
        raise PermissionDenied("Your account no longer exists.")
    if member_id not in rows:
        raise User.DoesNotExist
    owner_count = sum(1 for user in rows.values() if user.role == Role.OWNER)
    return LockedTeam(actor=rows[actor_id], member=rows[member_id], owner_count=owner_count)


def ensure_may_manage(actor: User, member: User) -> None:
    if not actor.can_manage_team:
        raise PermissionDenied("Only owners and admins manage the team.")
    if member.role == Role.OWNER and actor.role != Role.OWNER:
        raise TeamError("Only an owner can change or remove an owner.")


def ensure_may_grant(actor: User, role: str) -> None:
    if role not in Role.values:
        raise TeamError(f"Unknown role {role!r}.")
    if not actor.can_manage_team:
        raise PermissionDenied("Only owners and admins manage the team.")
    if role == Role.OWNER and actor.role != Role.OWNER:
        raise TeamError("Only an owner can make someone an owner.")


def ensure_an_owner_remains(team: LockedTeam) -> None:
    if team.member.role == Role.OWNER and team.owner_count <= 1:
        raise TeamError("The team needs at least one owner: make someone else an owner first.")


def accept_invite_path(member: User) -> str:
    # Tenant hosts route with ROOT_URLCONF (aiaas.urls_tenant).
    return reverse(
        "accept-invite",
        urlconf=settings.ROOT_URLCONF,
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(member.pk)),
            "token": default_token_generator.make_token(member),
        },
    )


def send_invitation(tenant: Tenant, *, member: User, accept_url: str, invited_by: User) -> bool:
    context = {"tenant": tenant, "member": member, "accept_url": accept_url, "invited_by": invited_by}
    try:
        send_mail(
            subject=f"You're invited to {tenant.name} on aiaas",
            message=render_to_string("emails/invitation.txt", context),
            from_email=None,
            recipient_list=[member.email],
        )
    except OSError:  # smtplib.SMTPException and socket errors
        logger.exception("Could not email the invitation of member %s", member.pk)
        return False
    return True


# Sign-in and password reset throttles (accounts/throttling.py): counted per tenant,
# and for the admin's sign-ins in STAFF_SCOPE.


def login_is_throttled(scope: str, *, email: str, address: str) -> bool:
    """Whether sign-ins in `scope` (tenant_scope or STAFF_SCOPE) for `email`, or
    from `address`, are refused for now."""
    return LOGIN_FAILURES_PER_USER.is_exhausted(scope, email) or (
        LOGIN_FAILURES_PER_IP.is_exhausted(scope, address)
    )


def record_login_failure(scope: str, *, email: str, address: str) -> None:
    LOGIN_FAILURES_PER_USER.hit(scope, email)
    LOGIN_FAILURES_PER_IP.hit(scope, address)


def forget_login_failures(scope: str, *, email: str) -> None:
    """A successful sign-in clears the email's failures (not the address's)."""
    LOGIN_FAILURES_PER_USER.reset(scope, email)


def admit_password_reset(tenant: Tenant, *, email: str, address: str) -> bool:
    """Count a reset request on `tenant`; whether it is within both limits."""
    within_email = PASSWORD_RESETS_PER_EMAIL.hit(tenant_scope(tenant), email)
    within_address = PASSWORD_RESETS_PER_IP.hit(tenant_scope(tenant), address)
    return within_email and within_address


class TenantPasswordResetTokenGenerator(PasswordResetTokenGenerator):
    """Django's reset tokens, bound to the schema they were made in: a link made
    for one tenant's user fails on every other tenant's host, even for a user
    with the same id, and it fails once the password changes or a sign-in happens."""

    key_salt = "accounts.services.TenantPasswordResetTokenGenerator"

    def _make_hash_value(self, user: User, timestamp: int) -> str:
        return f"{current_schema_name()}:{super()._make_hash_value(user, timestamp)}"


password_reset_tokens = TenantPasswordResetTokenGenerator()
