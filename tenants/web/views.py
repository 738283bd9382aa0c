"""The public host's product page with signup; on a tenant's host, the email
verification link, signup's one-time welcome link, and the dashboard's API keys
pages (a page per key with its usage)."""

from __future__ import annotations

import logging
from typing import Any, ClassVar
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from redis import RedisError

from accounts.login_tokens import mint_login_token, take_login_token
from accounts.models import Role, User
from accounts.selectors import active_api_keys_of, keys_matching, listed_keys, plan_limits_summary
from accounts.throttling import client_address
from analytics.dashboard import key_figures
from analytics.ranges import Preset
from analytics.web.charts import key_charts_of
from analytics.web.forms import RangeForm
from tenants.models import ApiKey
from tenants.selectors import api_keys_of
from tenants.services import (
    NewTenant,
    ProvisioningError,
    SignupThrottledError,
    admit_signup_attempt,
    create_api_key,
    resend_verification_email,
    revoke_api_key,
    set_outbound_policy,
    sign_up_tenant,
    tenant_domain_name,
    update_api_key,
    verify_tenant_email,
)
from tenants.web import new_keys
from tenants.web.base import PageAccess, TenantPageView, bind_session_to_tenant, manager_page, tenant_page
from tenants.web.forms import (
    ApiKeyForm,
    ApiKeyLimitsForm,
    OutboundSettingsForm,
    SignupForm,
    as_sentence,
    scope_explanations,
)

logger = logging.getLogger(__name__)


@require_http_methods(["GET", "POST"])
def home(request: HttpRequest) -> HttpResponse:
    """Signup: throttled per address and for the platform. The new owner is sent,
    signed in, to the new workspace's host by a one-time token (and emailed the
    verification link); if the token cannot be made, this page says to check email."""
    form = SignupForm(request.POST) if request.method == "POST" else SignupForm()
    status = 200
    try:
        if request.method == "POST":
            admit_signup_attempt(client_address(request))
        if form.is_valid():
            origin = tenant_origin(request, tenant_domain_name(form.cleaned_data["slug"]))
            created = sign_up_tenant(
                slug=form.cleaned_data["slug"],
                name=form.cleaned_data["name"],
                owner_email=form.cleaned_data["owner_email"],
                owner_password=form.cleaned_data["password"],
                tenant_origin=origin,
            )
            return welcome_redirect(request, created, origin)
    except SignupThrottledError as error:
        form.add_error(None, as_sentence(str(error)))
        status = 429
    except ProvisioningError as error:
        form.add_error(None, as_sentence(str(error)))
    return render(
        request, "public/home.html", {"form": form, "base_domain": settings.BASE_DOMAIN}, status=status
    )


def welcome_redirect(request: HttpRequest, created: NewTenant, origin: str) -> HttpResponse:
    """To the new host's welcome link, which signs the owner in (accounts/login_tokens.py)."""
    try:
        token = mint_login_token(created.tenant, created.owner.pk)
    except RedisError:
        logger.exception("Could not mint the login token of tenant %s", created.tenant.pk)
        context = {"tenant": created.tenant, "owner_email": created.owner.email}
        return render(request, "public/check_email.html", context)
    path = reverse("welcome", urlconf=settings.ROOT_URLCONF, kwargs={"token": token})
    return redirect(origin + path)


def tenant_origin(request: HttpRequest, domain: str) -> str:
    """The tenant's host on this request's scheme and port."""
    _, separator, port = request.get_host().partition(":")
    return f"{request.scheme}://{domain}{separator}{port}"


class VerifyEmailView(TenantPageView):
    """The link emailed at signup: it verifies this host's tenant and no other."""

    dangerously_allow_anonymous: ClassVar[bool] = True  # the signed link is the credential

    def get(self, request: HttpRequest, token: str) -> HttpResponse:
        if not verify_tenant_email(self.tenant, token):
            return render(request, "registration/verify_email_failed.html", status=400)
        messages.success(request, "Your email address is confirmed. Sign in to start.")
        return redirect("login")


class WelcomeView(TenantPageView):
    """Where signup sends the new owner: the one-time token signs them in on this
    host, once, within a minute (docs/decisions/0032)."""

    dangerously_allow_anonymous: ClassVar[bool] = True  # the one-time token is the credential

    @method_decorator(never_cache)
    def get(self, request: HttpRequest, token: str) -> HttpResponse:
        user_id = take_login_token(self.tenant, token)
        user = User.objects.filter(pk=user_id, is_active=True).first() if user_id is not None else None
        if user is None:
            return render(request, "registration/welcome_failed.html", status=400)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        bind_session_to_tenant(request, self.tenant)
        messages.success(request, f"Welcome to {self.tenant.name}. Three steps to your first API call:")
        return redirect("dashboard:overview")


@manager_page
@require_POST
def resend_verification(request: HttpRequest, access: PageAccess) -> HttpResponse:
    """The owner, signed in by the signup's token, asks for the email link again
    (at most VERIFICATION_EMAILS_PER_HOUR, as signing in would send it)."""
    if access.tenant.is_email_verified:
        messages.info(request, "Your email address is already confirmed.")
    elif access.user.role != Role.OWNER:
        messages.error(request, "Only the owner can confirm the workspace's email address.")
    elif resend_verification_email(
        access.tenant, owner_email=access.user.email, tenant_origin=f"{request.scheme}://{request.get_host()}"
    ):
        messages.success(request, f"We sent the link again to {access.user.email}.")
    else:
        messages.error(request, "We could not send the link now: try again in an hour.")
    return redirect("dashboard:overview")


# The dashboard's API keys pages (tenant host; tenants/web/dashboard_urls.py)


KEYS_PER_PAGE = 25


@tenant_page
@never_cache  # the response may carry a new key's secret
@require_http_methods(["GET", "POST"])
def keys(request: HttpRequest, access: PageAccess) -> HttpResponse:
    """The keys, 25 a page, searched by name or prefix. Creating one redirects
    back here (Post/Redirect/Get), where its secret is shown once."""
    form = ApiKeyForm()
    if request.method == "POST":
        access.require_manager()
        form = ApiKeyForm(request.POST)
        if form.is_valid():
            issue_api_key(request, access, form)
            return redirect(reverse("dashboard:keys") + "#new-key")
    search = request.GET.get("q", "")[:100]
    page = Paginator(keys_matching(access.tenant, search), KEYS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "issued": new_keys.take_over(request, access.tenant),
        "page": page,
        "keys": listed_keys(page.object_list, access.tenant.plan),
        "search": search,
        "query": urlencode({"q": search}) + "&" if search else "",
        "total": api_keys_of(access.tenant).count(),
        "scopes": scope_explanations(),
        "plan_limits": plan_limits_summary(access.tenant.plan),
    }
    return render(request, "dashboard/keys.html", context)


def issue_api_key(request: HttpRequest, access: PageAccess, form: ApiKeyForm) -> None:
    issued = create_api_key(access.tenant, created_by=access.user.email, **form.cleaned_data)
    new_keys.hand_over(request, access.tenant, issued)
    messages.success(request, f"Created the key “{issued.api_key.name}”.")


@tenant_page
@require_GET
def key_detail(request: HttpRequest, access: PageAccess, pk: int) -> HttpResponse:
    """One key: its settings, limits and last use, and its usage over a range."""
    api_key = get_object_or_404(api_keys_of(access.tenant), pk=pk)
    now = timezone.now()
    form = RangeForm(request.GET, today=now.date())
    context: dict[str, Any] = {
        "api_key": api_key,
        "row": listed_keys([api_key], access.tenant.plan)[0],
        "scopes": scope_explanations(),
        "form": form,
        "presets": list(Preset),
    }
    if not form.is_valid():
        return render(request, "dashboard/key_detail.html", context, status=400)
    figures = key_figures(access.tenant, api_key.pk, form.date_range(now))
    context.update(figures=figures, charts=key_charts_of(figures))
    return render(request, "dashboard/key_detail.html", context)


@manager_page
@require_POST
def revoke_key(request: HttpRequest, access: PageAccess, pk: int) -> HttpResponse:
    api_key = get_object_or_404(api_keys_of(access.tenant), pk=pk)
    if revoke_api_key(api_key):
        messages.success(request, f"Revoked the key “{api_key.name}”. It stops working now.")
    else:
        messages.info(request, f"The key “{api_key.name}” was already revoked.")
    return redirect("dashboard:keys")


@manager_page
@require_http_methods(["GET", "POST"])
def key_limits(request: HttpRequest, access: PageAccess, pk: int) -> HttpResponse:
    """Change an active key's overrides of the plan's limits; empty fields clear them."""
    api_key = get_object_or_404(active_api_keys_of(access.tenant), pk=pk)
    if request.method == "GET":
        fields = ("priority", *ApiKey.LIMIT_FIELDS)
        form = ApiKeyLimitsForm(initial={field: getattr(api_key, field) for field in fields})
    else:
        form = ApiKeyLimitsForm(request.POST)
        if form.is_valid():
            save_key_limits(request, api_key, form.cleaned_data)
            return redirect("dashboard:keys")
    context = {"form": form, "api_key": api_key, "plan_limits": plan_limits_summary(access.tenant.plan)}
    return render(request, "dashboard/key_limits.html", context)


def save_key_limits(request: HttpRequest, api_key: ApiKey, limits: dict[str, Any]) -> None:
    changes = {field: value for field, value in limits.items() if getattr(api_key, field) != value}
    if not changes:
        messages.info(request, f"The limits of “{api_key.name}” are unchanged.")
        return
    update_api_key(api_key, changes)
    messages.success(request, f"Saved the limits of “{api_key.name}”.")


@manager_page
@require_http_methods(["GET", "POST"])
def workspace_settings(request: HttpRequest, access: PageAccess) -> HttpResponse:
    """Where the workspace's tools and URL ingestion may send requests: owners and
    admins read it, the owner changes it (as the owner alone changes request logging)."""
    tenant = access.tenant
    is_owner = access.user.role == Role.OWNER
    if request.method == "GET":
        initial = {
            "hosts": "\n".join(tenant.outbound_allowed_hosts),
            "ports": ", ".join(map(str, tenant.outbound_allowed_ports)),
        }
        form = OutboundSettingsForm(initial=initial)
    else:
        if not is_owner:
            raise PermissionDenied("Only the workspace's owner changes where requests may go.")
        form = OutboundSettingsForm(request.POST)
        if form.is_valid() and save_outbound_settings(request, access, form):
            return redirect("dashboard:settings")
    context = {
        "form": form,
        "is_owner": is_owner,
        "permitted_ports": ", ".join(settings.OUTBOUND_PERMITTED_PORTS),
    }
    return render(request, "dashboard/settings.html", context, status=400 if form.errors else 200)


def save_outbound_settings(request: HttpRequest, access: PageAccess, form: OutboundSettingsForm) -> bool:
    try:
        set_outbound_policy(access.tenant, hosts=form.cleaned_data["hosts"], ports=form.cleaned_data["ports"])
    except ValidationError as error:
        for field, messages_of_field in error.message_dict.items():
            for message in messages_of_field:
                form.add_error("hosts" if field == "outbound_allowed_hosts" else "ports", message)
        return False
    messages.success(request, "Saved where requests may go.")
    return True
