"""The public host: the product page with signup."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from tenants.services import ProvisioningError, provision_tenant
from tenants.web.forms import SignupForm, as_sentence


@require_http_methods(["GET", "POST"])
def home(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST) if request.method == "POST" else SignupForm()
    if form.is_valid():
        try:
            provisioned = provision_tenant(
                slug=form.cleaned_data["slug"],
                name=form.cleaned_data["name"],
                owner_email=form.cleaned_data["owner_email"],
                owner_password=form.cleaned_data["password"],
            )
        except ProvisioningError as error:
            form.add_error(None, as_sentence(str(error)))
        else:
            return HttpResponseRedirect(tenant_login_url(request, provisioned.domain.domain))
    return render(request, "public/home.html", {"form": form, "base_domain": settings.BASE_DOMAIN})


def tenant_login_url(request: HttpRequest, domain: str) -> str:
    """The login page on the tenant's host, on this request's scheme and port."""
    _, separator, port = request.get_host().partition(":")
    path = reverse("login", urlconf=settings.ROOT_URLCONF)  # tenant hosts route with ROOT_URLCONF
    return f"{request.scheme}://{domain}{separator}{port}{path}"
