"""The tenant host: login, invitation acceptance and the dashboard.

Every view works on `request_tenant(request)`, the tenant the host names, and
refuses to run when the connection is not on that tenant's schema.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import stripe
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import SetPasswordForm
from django.contrib.auth.views import LoginView, PasswordResetConfirmView
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from django.views.generic import View
from django_tenants.utils import get_public_schema_name

from accounts.models import Role, User
from accounts.selectors import (
    active_api_keys_of,
    dashboard_summary,
    listed_keys_of,
    plan_limits_summary,
    team_of,
)
from accounts.services import Invitation, TeamError, change_role, invite_member, remove_member
from accounts.web.forms import ApiKeyForm, ApiKeyLimitsForm, InviteForm, LoginForm, RoleForm
from billing.models import Plan
from billing.models.stripe import LIVE_STATUSES
from billing.selectors import (
    UsageGrouping,
    UsagePeriod,
    invoice_preview,
    usage_events_of,
    usage_groups,
    usage_totals,
)
from billing.services import BillingError, create_checkout_session, create_portal_session
from billing.stripe_api import StripeNotConfiguredError, stripe_configured
from routing.selectors import enabled_models
from tenants.context import current_schema_name
from tenants.models import ApiKey, Tenant
from tenants.selectors import api_keys_of
from tenants.services import IssuedApiKey, create_api_key, revoke_api_key, update_api_key

logger = logging.getLogger(__name__)


def request_tenant(request: HttpRequest) -> Tenant:
    tenant = getattr(request, "tenant", None)
    if (
        not isinstance(tenant, Tenant)
        or tenant.schema_name == get_public_schema_name()
        or current_schema_name() != tenant.schema_name
    ):
        raise RuntimeError("no tenant context: refusing to serve a tenant page")
    return tenant


def acting_user(request: HttpRequest) -> User:
    if not isinstance(request.user, User):
        raise PermissionDenied
    return request.user


def ensure_manager(request: HttpRequest) -> User:
    user = acting_user(request)
    if not user.can_manage_team:
        raise PermissionDenied("Only owners and admins can do this.")
    return user


class TenantPage(View):
    """Class-based views of the tenant host check the tenant before anything else."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        request_tenant(request)
        return super().dispatch(request, *args, **kwargs)


class TenantLoginView(TenantPage, LoginView):
    form_class = LoginForm
    redirect_authenticated_user = True


class AcceptInviteView(TenantPage, PasswordResetConfirmView):
    """An invited member sets their first password and is logged in.

    The link works only while the member has no usable password, so it can
    never reset the password of someone who already has one.
    """

    template_name = "registration/accept_invite.html"
    post_reset_login = True
    success_url = reverse_lazy("dashboard:overview")

    def get_user(self, uidb64: str) -> User | None:
        user = super().get_user(uidb64)
        return user if isinstance(user, User) and not user.has_usable_password() else None

    def form_valid(self, form: SetPasswordForm[User]) -> HttpResponse:
        response = super().form_valid(form)
        messages.success(self.request, f"Welcome to {request_tenant(self.request).name}.")
        return response


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    tenant = request_tenant(request)
    context = {
        "summary": dashboard_summary(tenant),
        "plan_limits": plan_limits_summary(tenant.plan),
        "api_base_url": request.build_absolute_uri("/v1"),
        "models": enabled_models(),
    }
    return render(request, "dashboard/overview.html", context)


@login_required
def usage(request: HttpRequest) -> HttpResponse:
    """This month's (UTC) usage from the ledger: totals, then by day and by model."""
    events = usage_events_of(request_tenant(request))
    period = UsagePeriod.month_of(timezone.now().date())
    context = {
        "period": period,
        "totals": usage_totals(events, period),
        "by_day": usage_groups(events, period, UsageGrouping.DAY),
        "by_model": usage_groups(events, period, UsageGrouping.MODEL),
    }
    return render(request, "dashboard/usage.html", context)


@login_required
@never_cache  # the response may carry a new key's secret
@require_http_methods(["GET", "POST"])
def keys(request: HttpRequest) -> HttpResponse:
    tenant = request_tenant(request)
    form, issued = submit_api_key(request, tenant) if request.method == "POST" else (ApiKeyForm(), None)
    context = {
        "form": form,
        "issued": issued,
        "keys": listed_keys_of(tenant),
        "plan_limits": plan_limits_summary(tenant.plan),
    }
    return render(request, "dashboard/keys.html", context)


def submit_api_key(request: HttpRequest, tenant: Tenant) -> tuple[ApiKeyForm, IssuedApiKey | None]:
    user = ensure_manager(request)
    form = ApiKeyForm(request.POST)
    if not form.is_valid():
        return form, None
    issued = create_api_key(tenant, created_by=user.email, **form.cleaned_data)
    messages.success(request, f"Created the key “{issued.api_key.name}”.")
    return ApiKeyForm(), issued


@login_required
@require_POST
def revoke_key(request: HttpRequest, pk: int) -> HttpResponse:
    ensure_manager(request)
    api_key = get_object_or_404(api_keys_of(request_tenant(request)), pk=pk)
    if revoke_api_key(api_key):
        messages.success(request, f"Revoked the key “{api_key.name}”. It stops working now.")
    else:
        messages.info(request, f"The key “{api_key.name}” was already revoked.")
    return redirect("dashboard:keys")


@login_required
@require_http_methods(["GET", "POST"])
def key_limits(request: HttpRequest, pk: int) -> HttpResponse:
    """Change an active key's overrides of the plan's limits; empty fields clear them."""
    ensure_manager(request)
    tenant = request_tenant(request)
    api_key = get_object_or_404(active_api_keys_of(tenant), pk=pk)
    if request.method == "GET":
        form = ApiKeyLimitsForm(initial={field: getattr(api_key, field) for field in ApiKey.LIMIT_FIELDS})
    else:
        form = ApiKeyLimitsForm(request.POST)
        if form.is_valid():
            save_key_limits(request, api_key, form.cleaned_data)
            return redirect("dashboard:keys")
    context = {"form": form, "api_key": api_key, "plan_limits": plan_limits_summary(tenant.plan)}
    return render(request, "dashboard/key_limits.html", context)


def save_key_limits(request: HttpRequest, api_key: ApiKey, limits: dict[str, Any]) -> None:
    changes = {field: value for field, value in limits.items() if getattr(api_key, field) != value}
    if not changes:
        messages.info(request, f"The limits of “{api_key.name}” are unchanged.")
        return
    update_api_key(api_key, changes)
    messages.success(request, f"Saved the limits of “{api_key.name}”.")


@login_required
@never_cache  # the response may carry an invitation link
@require_http_methods(["GET", "POST"])
def team(request: HttpRequest) -> HttpResponse:
    tenant = request_tenant(request)
    form, invitation = submit_invite(request, tenant) if request.method == "POST" else (InviteForm(), None)
    context = {
        "form": form,
        "invitation": invitation,
        "members": team_of(tenant),
        "can_manage": acting_user(request).can_manage_team,
        "roles": Role.choices,
    }
    return render(request, "dashboard/team.html", context)


def submit_invite(request: HttpRequest, tenant: Tenant) -> tuple[InviteForm, Invitation | None]:
    user = ensure_manager(request)
    form = InviteForm(request.POST)
    if not form.is_valid():
        return form, None
    try:
        invitation = invite_member(
            tenant, invited_by=user, site_url=request.build_absolute_uri("/"), **form.cleaned_data
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


@login_required
@require_POST
def change_member_role(request: HttpRequest, pk: int) -> HttpResponse:
    user = ensure_manager(request)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a valid role.")
        return redirect("dashboard:team")
    with team_change(request):
        member = change_role(
            request_tenant(request), member_id=pk, role=form.cleaned_data["role"], changed_by=user
        )
        messages.success(request, f"{member.email} now has the role {member.get_role_display()}.")
    return redirect("dashboard:team")


@login_required
@require_POST
def remove_team_member(request: HttpRequest, pk: int) -> HttpResponse:
    user = ensure_manager(request)
    with team_change(request):
        remove_member(request_tenant(request), member_id=pk, removed_by=user)
        messages.success(request, "Removed the member. Their sessions no longer work.")
    return redirect("dashboard:team")


# Billing


@login_required
def billing(request: HttpRequest) -> HttpResponse:
    """The current period's bill from the ledger, and the Stripe buttons (owners and admins)."""
    tenant = request_tenant(request)
    preview = invoice_preview(tenant)
    context = {
        "preview": preview,
        "subscription_live": preview.subscription_status in LIVE_STATUSES,
        "plans": Plan.objects.exclude(stripe_price_id="").order_by("monthly_price_usd"),
        "stripe_configured": stripe_configured(),
        "can_manage": acting_user(request).can_manage_team,
    }
    return render(request, "dashboard/billing.html", context)


@login_required
@require_POST
def billing_checkout(request: HttpRequest) -> HttpResponse:
    """Off to Stripe Checkout to subscribe to the chosen plan."""
    ensure_manager(request)
    plan = get_object_or_404(Plan.objects.exclude(stripe_price_id=""), slug=request.POST.get("plan", ""))
    back = request.build_absolute_uri(reverse("dashboard:billing"))
    with stripe_errors_as_messages(request):
        return redirect(create_checkout_session(request_tenant(request), plan, f"{back}?checkout=done", back))
    return redirect("dashboard:billing")


@login_required
@require_POST
def billing_portal(request: HttpRequest) -> HttpResponse:
    """Off to Stripe's Customer Portal: payment methods, invoices, plan changes, cancellation."""
    ensure_manager(request)
    back = request.build_absolute_uri(reverse("dashboard:billing"))
    with stripe_errors_as_messages(request):
        return redirect(create_portal_session(request_tenant(request), back))
    return redirect("dashboard:billing")


@contextmanager
def stripe_errors_as_messages(request: HttpRequest) -> Iterator[None]:
    try:
        yield
    except (BillingError, StripeNotConfiguredError) as error:
        messages.error(request, str(error))
    except stripe.StripeError:
        logger.exception("Stripe refused or did not answer")
        messages.error(request, "Stripe could not be reached; nothing was changed. Try again in a moment.")
