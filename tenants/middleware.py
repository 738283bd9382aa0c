"""The tenant of a request, from its host (dashboards) or, for /v1/ and /api/,
from its API key later (tenants.authentication); CORS on those paths."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import set_urlconf
from django.utils.cache import patch_vary_headers
from django_tenants.middleware.main import TenantMainMiddleware
from django_tenants.utils import remove_www

from aiaas.api_errors import error_body
from aiaas.cors import is_preflight, preflight_headers, response_headers
from tenants.context import activate_public_schema, activate_tenant
from tenants.cors import known_origins
from tenants.models import Tenant
from tenants.selectors import tenant_for_host


class TenantRoutingMiddleware(TenantMainMiddleware):
    """Pick the schema and URLConf for a request.

    - /v1/ and /api/ on any host: the API URLConf, on the public schema until
      the API key names the tenant (tenants.authentication).
    - the apex domain: the public site and admin.
    - <slug>.<BASE_DOMAIN>: that tenant's dashboard; an unknown or inactive
      tenant's host is a 404, never the public site.
    """

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        activate_public_schema()
        if request.path_info.startswith(settings.API_PATH_PREFIXES):
            # The key names the tenant, on any host, as on the gateway's /v1 (an internal
            # service name, an IP, a load balancer's name): the host names nothing here,
            # and nothing these paths answer is built from it, so it is not refused.
            request.get_host = request._get_raw_host  # type: ignore[method-assign,attr-defined]
            request.tenant = None  # type: ignore[attr-defined]
            request.urlconf = settings.API_URLCONF  # type: ignore[attr-defined]
            set_urlconf(settings.API_URLCONF)
            return None
        try:
            hostname = remove_www(request.get_host().split(":")[0])
        except DisallowedHost:
            return JsonResponse(error_body(400, "This host is not served here.", "invalid_host"), status=400)
        tenant = tenant_for_host(hostname)
        if tenant is None:
            raise Http404(f"No tenant for hostname {hostname!r}")
        tenant.domain_url = hostname
        request.tenant = tenant  # type: ignore[attr-defined]
        activate_tenant(tenant)
        self.setup_url_routing(request)  # type: ignore[no-untyped-call]
        return None


def refused_preflight() -> JsonResponse:
    message = "This origin may not call the API: no tenant allows it, or the method is not served."
    return JsonResponse(error_body(403, message, "origin_not_allowed"), status=403)


class CorsMiddleware:
    """/v1/ and /api/ paths only: preflights answered before anything else (no key,
    no CSRF), answers given Access-Control-Allow-Origin for the key's tenant's origins."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(settings.API_PATH_PREFIXES):
            return self.get_response(request)
        headers = {name.lower(): value for name, value in request.headers.items()}
        if is_preflight(request.method or "", headers):
            answer = preflight_headers(headers, known_origins.get())
            if answer is None:
                return refused_preflight()
            response = HttpResponse(status=204)
            for name, value in answer.items():
                response[name] = value
            return response
        response = self.get_response(request)
        tenant = getattr(request, "tenant", None)
        allowed = tenant.cors_allowed_origins if isinstance(tenant, Tenant) else ()
        for name, value in response_headers(headers.get("origin"), allowed).items():
            if name == "vary":
                patch_vary_headers(response, [value])
            else:
                response[name] = value
        return response
