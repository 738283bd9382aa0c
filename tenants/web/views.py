"""The public host's product page with signup, the tenant host's email
verification link, and the dashboard's API keys pages."""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts.selectors import active_api_keys_of, listed_keys_of, plan_limits_summary
from accounts.throttling import client_address
from tenants.models import ApiKey
from tenants.selectors import api_keys_of
from tenants.services import (
    IssuedApiKey,
    ProvisioningError,
    SignupThrottledError,
    admit_signup_attempt,
    create_api_key,
    revoke_api_key,
    sign_up_tenant,
    tenant_domain_name,
    update_api_key,
    verify_tenant_email,
)
from tenants.web.base import PageAccess, TenantPageView, manager_page, tenant_page
from tenants.web.forms import ApiKeyForm, ApiKeyLimitsForm, SignupForm, as_sentence


@require_http_methods(["GET", "POST"])
def home(request: HttpRequest) -> HttpResponse:
    """Signup: throttled per address and for the platform; the new owner gets a
    verification link by email, and this page says so."""
    form = SignupForm(request.POST) if request.method == "POST" else SignupForm()
    status = 200
    try:
        if request.method == "POST":
            admit_signup_attempt(client_address(request))
        if form.is_valid():
            provisioned = sign_up_tenant(
                slug=form.cleaned_data["slug"],
                name=form.cleaned_data["name"],
                owner_email=form.cleaned_data["owner_email"],
                owner_password=form.cleaned_data["password"],
                tenant_origin=tenant_origin(request, tenant_domain_name(form.cleaned_data["slug"])),
            )
            context = {"tenant": provisioned.tenant, "owner_email": provisioned.owner.email}
            return render(request, "public/check_email.html", context)
    except SignupThrottledError as error:
        form.add_error(None, as_sentence(str(error)))
        status = 429
    except ProvisioningError as error:
        form.add_error(None, as_sentence(str(error)))
    return render(
        request, "public/home.html", {"form": form, "base_domain": settings.BASE_DOMAIN}, status=status
    )


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


# The dashboard's API keys pages (tenant host; tenants/web/dashboard_urls.py)


@tenant_page
@never_cache  # the response may carry a new key's secret
@require_http_methods(["GET", "POST"])
def keys(request: HttpRequest, access: PageAccess) -> HttpResponse:
    form, issued = submit_api_key(request, access) if request.method == "POST" else (ApiKeyForm(), None)
    context = {
        "form": form,
        "issued": issued,
        "keys": listed_keys_of(access.tenant),
        "plan_limits": plan_limits_summary(access.tenant.plan),
    }
    return render(request, "dashboard/keys.html", context)


def submit_api_key(request: HttpRequest, access: PageAccess) -> tuple[ApiKeyForm, IssuedApiKey | None]:
    user = access.require_manager()
    form = ApiKeyForm(request.POST)
    if not form.is_valid():
        return form, None
    issued = create_api_key(access.tenant, created_by=user.email, **form.cleaned_data)
    messages.success(request, f"Created the key “{issued.api_key.name}”.")
    return ApiKeyForm(), issued


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
        form = ApiKeyLimitsForm(initial={field: getattr(api_key, field) for field in ApiKey.LIMIT_FIELDS})
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
