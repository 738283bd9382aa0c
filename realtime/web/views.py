"""The dashboard's streaming chat playground (templates/dashboard/playground.html).

The page never sees an API key: for each request it asks `playground_token`
for a stream token of one of the tenant's inference keys, bound to this
dashboard's origin, and opens /ws/v1/chat/completions with it.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.selectors import active_api_keys_of
from accounts.web.views import ensure_manager, request_tenant
from realtime.tokens import StreamTokenClaims, mint_stream_token_sync
from routing.selectors import enabled_models
from tenants.models import ApiKey, ApiKeyScope, Tenant


def inference_keys_of(tenant: Tenant) -> list[ApiKey]:
    return [
        key for key in active_api_keys_of(tenant).order_by("name") if key.has_scope(ApiKeyScope.INFERENCE)
    ]


@login_required
def playground(request: HttpRequest) -> HttpResponse:
    tenant = request_tenant(request)
    ensure_manager(request)
    context = {
        "keys": inference_keys_of(tenant),
        "models": enabled_models().filter(supports_chat=True),
    }
    return render(request, "dashboard/playground.html", context)


@login_required
@never_cache
@require_POST
def playground_token(request: HttpRequest) -> JsonResponse:
    """A single-use token for one chat socket, acting as the chosen key, from this origin only."""
    tenant = request_tenant(request)
    ensure_manager(request)
    chosen = request.POST.get("key", "")
    api_key = next((key for key in inference_keys_of(tenant) if str(key.pk) == chosen), None)
    if api_key is None:
        return JsonResponse(
            {"error": {"message": "Choose an active key with the inference scope."}}, status=400
        )
    claims = StreamTokenClaims(
        tenant_id=tenant.pk,
        schema_name=tenant.schema_name,
        api_key_id=api_key.pk,
        purpose="chat.completions",
        origin=f"{request.scheme}://{request.get_host()}".lower(),
    )
    return JsonResponse(mint_stream_token_sync(claims))
