"""Stripe's door into the platform, on the public host."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing.webhooks import InvalidWebhookError, receive_event, verify_event


@csrf_exempt  # Stripe signs its requests; it has no CSRF token
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    """Verify, store once, queue, and answer at once: Stripe waits for nothing
    but the 2xx. A request that fails verification writes nothing."""
    try:
        event = verify_event(request.body, request.headers.get("Stripe-Signature"))
    except InvalidWebhookError as error:
        return JsonResponse({"error": {"message": str(error), "type": "invalid_request_error"}}, status=400)
    stored = receive_event(event)
    return JsonResponse({"received": True, "status": stored.status})
