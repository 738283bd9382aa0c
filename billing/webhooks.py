"""Stripe webhooks: verify the signature on the raw bytes, store the event once,
queue its processing.

Stripe signs `<timestamp>.<body>` with HMAC-SHA256 and sends
`Stripe-Signature: t=<timestamp>,v1=<hex>[,v1=...]`. An event is accepted only
when the timestamp is within TOLERANCE_SECONDS of our clock, in either
direction (the library checks only the past), and one v1 signature matches
one of the configured secrets (several during a rotation). Nothing is written
before that.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction

from billing.models import EventStatus, StripeEvent

logger = logging.getLogger(__name__)
TOLERANCE_SECONDS = 300


class InvalidWebhookError(ValueError):
    """The request is not a verified Stripe event; the message says why."""


def verify_event(payload: bytes, signature_header: str | None, now: float | None = None) -> dict[str, Any]:
    """The event in `payload`, once its signature is verified; raises InvalidWebhookError."""
    secrets = settings.STRIPE_WEBHOOK_SECRETS
    if not secrets:
        raise InvalidWebhookError("Stripe webhooks are not configured here.")
    if not signature_header:
        raise InvalidWebhookError("The Stripe-Signature header is missing.")
    timestamp = signed_timestamp(signature_header)
    if abs((now or time.time()) - timestamp) > TOLERANCE_SECONDS:
        raise InvalidWebhookError("The signature's timestamp is outside the tolerance.")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidWebhookError("The body is not UTF-8.") from None
    if not any(signature_matches(text, signature_header, secret) for secret in secrets):
        raise InvalidWebhookError("No signature matches.")
    return parse_event(text)


def signed_timestamp(signature_header: str) -> int:
    """The timestamp the stripe library verifies the signature with: the first item
    named exactly `t`, parsed as it parses it, so the window checked is the one signed."""
    values = [item.split("=", 2)[1:] for item in signature_header.split(",") if item.split("=", 2)[0] == "t"]
    try:
        return int(values[0][0])
    except (IndexError, ValueError):
        raise InvalidWebhookError("The Stripe-Signature header has no timestamp.") from None


def signature_matches(text: str, signature_header: str, secret: str) -> bool:
    try:
        stripe.WebhookSignature.verify_header(text, signature_header, secret, TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError:
        return False
    return True


def parse_event(text: str) -> dict[str, Any]:
    if "\\u0000" in text:  # PostgreSQL's jsonb cannot store it; Stripe never sends it
        raise InvalidWebhookError("The body holds a NUL character.")
    try:
        event = json.loads(text, parse_constant=not_json)
        # What PostgreSQL's jsonb stores: UTF-8 text (no lone surrogate from a "\ud800" escape).
        json.dumps(event, ensure_ascii=False).encode()
    except (ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        raise InvalidWebhookError("The body is not JSON.") from None
    if not (
        isinstance(event, dict)
        and event.get("object") == "event"
        and isinstance(event.get("id"), str)
        and 0 < len(event["id"]) <= 255
        and isinstance(event.get("type"), str)
        and 0 < len(event["type"]) <= 255
        and isinstance(event.get("data"), dict)
        and isinstance(event["data"].get("object"), dict)
    ):
        raise InvalidWebhookError("The body is not a Stripe event.")
    return event


def not_json(constant: str) -> None:
    """NaN and Infinity, which Python's json reads and JSON (and jsonb) does not have."""
    raise ValueError(f"{constant} is not a JSON number")


def receive_event(event: dict[str, Any]) -> StripeEvent:
    """Store a verified event once (its id is unique) and queue its processing
    after commit. A redelivered event is queued again only if it is not done
    yet: processing is idempotent, so a duplicate run changes nothing."""
    from billing.tasks import process_stripe_event

    try:
        with transaction.atomic():
            stored, created = StripeEvent.objects.get_or_create(
                event_id=event["id"], defaults={"type": event["type"], "payload": event}
            )
    except IntegrityError:  # a concurrent delivery inserted it first
        stored, created = StripeEvent.objects.get(event_id=event["id"]), False
    if created or stored.status in (EventStatus.RECEIVED, EventStatus.FAILED):
        transaction.on_commit(lambda: process_stripe_event.delay(stored.pk), robust=True)
    return stored
