from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from accounts.models import Role, User
from accounts.services import (
    admit_password_reset,
    forget_login_failures,
    login_is_throttled,
    record_login_failure,
)
from accounts.throttling import STAFF_SCOPE, client_address, tenant_scope
from tenants.models import Tenant
from tenants.services import resend_verification_email

TOO_MANY_SIGN_INS = "Too many failed sign-ins. Wait a few minutes, or reset your password."
TOO_MANY_RESETS = "Too many password reset requests. Try again in an hour."


class ThrottledSignInMixin(AuthenticationForm):
    """Failed sign-ins are counted in the form's `scope`, for the email and for the
    address; past either limit every attempt is refused (code `throttled`) before
    the password is checked."""

    @property
    def scope(self) -> str:
        raise NotImplementedError

    def clean(self) -> dict[str, Any]:
        email, address = self.cleaned_data.get("username") or "", client_address(self.request)  # type: ignore[arg-type]
        if login_is_throttled(self.scope, email=email, address=address):
            raise ValidationError(TOO_MANY_SIGN_INS, code="throttled")
        try:
            cleaned = super().clean()
        except ValidationError as error:
            if error.code == "invalid_login":
                record_login_failure(self.scope, email=email, address=address)
            raise
        forget_login_failures(self.scope, email=email)
        return cleaned


class StaffLoginForm(ThrottledSignInMixin, AdminAuthenticationForm):
    """The Django admin's sign-in (accounts/admin.py installs it), throttled apart
    from every tenant's: staff accounts are worth the most to guess."""

    @property
    def scope(self) -> str:
        return STAFF_SCOPE


class LoginForm(ThrottledSignInMixin):
    """Django's login form, with the username field presented as an email, throttled
    per tenant. The owner of a tenant whose email is not yet verified is refused
    (code `email_not_verified`) and sent a new link.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        username = self.fields["username"]
        username.label = "Email"
        username.widget = forms.EmailInput(attrs={**username.widget.attrs, "autocomplete": "email"})

    @property
    def tenant(self) -> Tenant:
        tenant: Tenant = self.request.tenant  # type: ignore[union-attr]  # tenant pages only
        return tenant

    @property
    def scope(self) -> str:
        return tenant_scope(self.tenant)

    def confirm_login_allowed(self, user: User) -> None:
        super().confirm_login_allowed(user)
        if not self.tenant.is_email_verified:
            resend_verification_email(self.tenant, owner_email=user.email, tenant_origin=self.origin())
            raise ValidationError(
                "Confirm your email address first: we sent you a link. Open it, then sign in.",
                code="email_not_verified",
            )

    def origin(self) -> str:
        return f"{self.request.scheme}://{self.request.get_host()}"  # type: ignore[union-attr]


class TenantPasswordResetForm(PasswordResetForm):
    """Django's reset form, throttled per tenant for the email and the address;
    past either limit nothing is sent (code `throttled`)."""

    def __init__(self, *args: Any, request: HttpRequest, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request = request

    def clean_email(self) -> str:
        email: str = self.cleaned_data["email"]
        tenant: Tenant = self.request.tenant  # type: ignore[attr-defined]  # tenant pages only
        if not admit_password_reset(tenant, email=email, address=client_address(self.request)):
            raise ValidationError(TOO_MANY_RESETS, code="throttled")
        return email


class InviteForm(forms.Form):
    email = forms.EmailField(
        max_length=User._meta.get_field("email").max_length,
        widget=forms.EmailInput(attrs={"placeholder": "teammate@example.com"}),
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
