"""The dashboard's streaming chat playground (templates/dashboard/playground.html).

The page never sees an API key: for each request (two when comparing models)
it asks `playground_token` for a stream token of one of the tenant's inference
keys, bound to this dashboard's origin, and opens /ws/v1/chat/completions with
it. The conversation lives in the page (static/js/playground.js).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.selectors import active_api_keys_of
from realtime.tokens import StreamTokenClaims, mint_stream_token_sync
from routing.selectors import enabled_models
from tenants.models import ApiKey, ApiKeyScope, Tenant
from tenants.web.base import PageAccess, manager_page


def inference_keys_of(tenant: Tenant) -> list[ApiKey]:
    return [
        key for key in active_api_keys_of(tenant).order_by("name") if key.has_scope(ApiKeyScope.INFERENCE)
    ]


@manager_page
def playground(request: HttpRequest, access: PageAccess) -> HttpResponse:
    models = enabled_models().filter(supports_chat=True).select_related("provider")
    context = {
        "keys": inference_keys_of(access.tenant),
        "models": models,
        "only_simulated": bool(models) and all(model.provider.is_simulated for model in models),
        "api_base_url": request.build_absolute_uri("/v1"),
    }
    return render(request, "dashboard/playground.html", context)


@manager_page
@never_cache
@require_POST
def playground_token(request: HttpRequest, access: PageAccess) -> JsonResponse:
    """A single-use token for one chat socket, acting as the chosen key, from this origin only."""
    tenant = access.tenant
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
