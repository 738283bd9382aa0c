"""The tenant host's sign-in pages and the dashboard's overview and team pages."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from django.contrib import messages
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm, SetPasswordForm
from django.contrib.auth.views import LoginView, LogoutView, PasswordResetConfirmView, PasswordResetView
from django.core.exceptions import NON_FIELD_ERRORS
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from django.views.generic import TemplateView

from accounts.models import Role, User
from accounts.selectors import dashboard_summary, first_run_of, plan_limits_summary, team_of
from accounts.services import (
    Invitation,
    TeamError,
    change_role,
    forget_login_failures,
    invite_member,
    password_reset_tokens,
    remove_member,
)
from accounts.throttling import tenant_scope
from accounts.web.charts import OVERVIEW_CHARTS
from accounts.web.forms import InviteForm, LoginForm, RoleForm, TenantPasswordResetForm
from routing.selectors import enabled_models
from tenants.web.base import PageAccess, TenantPageView, bind_session_to_tenant, manager_page, tenant_page


class TenantLoginView(TenantPageView, LoginView):
    form_class = LoginForm
    redirect_authenticated_user = True
    dangerously_allow_anonymous: ClassVar[bool] = True  # signing in is how one becomes a member

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        response = super().form_valid(form)
        bind_session_to_tenant(self.request, self.tenant)
        return response

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        return throttled_or(super().form_invalid(form), form)


def throttled_or(response: HttpResponse, form: Form) -> HttpResponse:
    """A form refused by a throttle answers 429."""
    if form.has_error(NON_FIELD_ERRORS, "throttled") or form.has_error("email", "throttled"):
        response.status_code = 429
    return response


class TenantPasswordResetView(TenantPageView, PasswordResetView):
    """Ask for a reset link on this tenant's host; it is emailed only to an active
    user of this tenant with a password, and works only on this host. The page
    says the same whether or not the email belongs to a user."""

    form_class = TenantPasswordResetForm
    template_name = "registration/password_reset_form.html"
    email_template_name = "emails/password_reset.txt"
    subject_template_name = "emails/password_reset_subject.txt"
    token_generator = password_reset_tokens
    success_url = reverse_lazy("password-reset-sent")
    dangerously_allow_anonymous: ClassVar[bool] = True  # for those who cannot sign in

    def get_form_kwargs(self) -> dict[str, Any]:
        return {**super().get_form_kwargs(), "request": self.request}

    def form_invalid(self, form: PasswordResetForm) -> HttpResponse:
        return throttled_or(super().form_invalid(form), form)


class TenantPasswordResetSentView(TenantPageView, TemplateView):
    template_name = "registration/password_reset_done.html"
    dangerously_allow_anonymous: ClassVar[bool] = True


class TenantPasswordResetConfirmView(TenantPageView, PasswordResetConfirmView):
    """Set a new password from a reset link made on this tenant's host; the
    user's sessions end (Django rotates the session auth hash)."""

    template_name = "registration/password_reset_confirm.html"
    token_generator = password_reset_tokens
    success_url = reverse_lazy("login")
    dangerously_allow_anonymous: ClassVar[bool] = True  # the link's token is the credential

    def form_valid(self, form: SetPasswordForm[User]) -> HttpResponse:
        response = super().form_valid(form)
        forget_login_failures(tenant_scope(self.tenant), email=form.user.email)
        messages.success(self.request, "Your password is changed. Sign in with it.")
        return response


# django-stubs narrow LogoutView.dispatch to HttpResponse; the base's returns LogoutView's.
class TenantLogoutView(TenantPageView, LogoutView):  # type: ignore[misc]
    dangerously_allow_anonymous: ClassVar[bool] = True  # signing out needs no member


class AcceptInviteView(TenantPageView, PasswordResetConfirmView):
    """An invited member sets their first password and is signed in.

    The link works only while the member has no usable password, so it can
    never reset the password of someone who already has one.
    """

    template_name = "registration/accept_invite.html"
    post_reset_login = True
    success_url = reverse_lazy("dashboard:overview")
    dangerously_allow_anonymous: ClassVar[bool] = True  # the invitation's token is the credential

    def get_user(self, uidb64: str) -> User | None:
        user = super().get_user(uidb64)
        return user if isinstance(user, User) and not user.has_usable_password() else None

    def form_valid(self, form: SetPasswordForm[User]) -> HttpResponse:
        response = super().form_valid(form)
        bind_session_to_tenant(self.request, self.tenant)
        messages.success(self.request, f"Welcome to {self.tenant.name}.")
        return response


@tenant_page
def overview(request: HttpRequest, access: PageAccess) -> HttpResponse:
    charts, status = OVERVIEW_CHARTS.context(request, access)
    context = {
        "summary": dashboard_summary(access.tenant),
        "first_run": first_run_of(access.tenant),
        "plan_limits": plan_limits_summary(access.tenant.plan),
        "api_base_url": request.build_absolute_uri("/v1"),
        "models": enabled_models(),
        **charts,
    }
    return render(request, "dashboard/overview.html", context, status=status)


@tenant_page
@never_cache  # the response may carry an invitation link
@require_http_methods(["GET", "POST"])
def team(request: HttpRequest, access: PageAccess) -> HttpResponse:
    form, invitation = submit_invite(request, access) if request.method == "POST" else (InviteForm(), None)
    context = {
        "form": form,
        "invitation": invitation,
        "members": team_of(access.tenant),
        "can_manage": access.can_manage,
        "roles": Role.choices,
    }
    return render(request, "dashboard/team.html", context)


def submit_invite(request: HttpRequest, access: PageAccess) -> tuple[InviteForm, Invitation | None]:
    user = access.require_manager()
    form = InviteForm(request.POST)
    if not form.is_valid():
        return form, None
    try:
        invitation = invite_member(
            access.tenant, invited_by=user, site_url=request.build_absolute_uri("/"), **form.cleaned_data
        )
    except TeamError as error:
        form.add_error(None, str(error))
        return form, None
    if invitation.emailed:
        messages.success(request, f"Invited {invitation.member.email}. We emailed them the link below.")
    else:
        messages.warning(request, f"Invited {invitation.member.email}, but the email failed: send the link.")
    return InviteForm(), invitation


@contextmanager
def team_change(request: HttpRequest) -> Iterator[None]:
    """Show a broken team rule as a message; an unknown member is a 404."""
    try:
        yield
    except TeamError as error:
        messages.error(request, str(error))
    except User.DoesNotExist:
        raise Http404("No such member.") from None


@manager_page
@require_POST
def change_member_role(request: HttpRequest, access: PageAccess, pk: int) -> HttpResponse:
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a valid role.")
        return redirect("dashboard:team")
    with team_change(request):
        member = change_role(
            access.tenant, member_id=pk, role=form.cleaned_data["role"], changed_by=access.user
        )
        messages.success(request, f"{member.email} now has the role {member.get_role_display()}.")
    return redirect("dashboard:team")


@manager_page
@require_POST
def remove_team_member(request: HttpRequest, access: PageAccess, pk: int) -> HttpResponse:
    with team_change(request):
        remove_member(access.tenant, member_id=pk, removed_by=access.user)
        messages.success(request, "Removed the member. Their sessions no longer work.")
    return redirect("dashboard:team")
