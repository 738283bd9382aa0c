"""Usage reaches Stripe as Billing Meter events, pushed from the ledger.

Each ledger row with tokens, of a tenant with a live subscription, made since
that subscription started, becomes one meter event: `event_name`
STRIPE_METER_EVENT_NAME, payload {stripe_customer_id, value: tokens},
`identifier` the row's id, `timestamp` when the request was served.

Exactly once: a row is marked reported only after Stripe accepted its event,
and Stripe refuses a second event with an identifier it has seen in the last
24 hours or more, which the pusher counts as accepted. So a pusher killed
between Stripe's acceptance and the mark sends the row again on its next run,
and Stripe counts it once.

One pusher at a time: a PostgreSQL advisory lock held by the pusher's session,
released by the server when that session dies.

Backoff: a 429, a 5xx or a network failure stops the run; the next run waits
for the larger of Stripe's Retry-After and an exponential backoff with jitter
(kept in Redis, so every worker honours it). A row Stripe refuses for good
(older than Stripe accepts, say) is set aside with the reason.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta

import stripe
from django.conf import settings
from django.db import connection
from django.db.models import F, Q
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context

from aiaas.redis_clients import sync_client
from billing.models import UsageEvent
from billing.models.stripe import LIVE_STATUSES
from billing.stripe_api import StripeNotConfiguredError, stripe_client

logger = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = 0x6D65746572  # "meter"
# Stripe takes meter events up to 35 days old; keep a margin for clocks and queues.
MAX_EVENT_AGE = timedelta(days=34)
BACKOFF_KEY = "billing:meter-push:backoff"  # hash: resume_at (epoch seconds), failures
BASE_BACKOFF_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 300.0
MAX_RETRY_AFTER_SECONDS = 3600.0


@dataclass(frozen=True)
class PushResult:
    rows: int = 0  # rows looked at; fewer than the batch size means none are left
    reported: int = 0  # rows Stripe now counts
    set_aside: int = 0  # rows Stripe refused for good
    stopped_early: bool = False  # Stripe asked to wait, failed or did not answer
    backing_off_seconds: float = 0.0  # how long the next run waits (Retry-After, or more)
    skipped: str = ""  # why nothing ran: "offline", "locked", "backing off"


class RetryLaterError(Exception):
    def __init__(self, delay_seconds: float, reason: str) -> None:
        super().__init__(reason)
        self.delay_seconds = delay_seconds


def push_meter_events(batch_size: int = 200) -> PushResult:
    """Report up to `batch_size` unreported ledger rows to Stripe (see the module docstring)."""
    if not settings.STRIPE_SECRET_KEY:
        return PushResult(skipped="offline")
    backoff = sync_client()
    with schema_context(get_public_schema_name()):
        resume_at = float(backoff.hget(BACKOFF_KEY, "resume_at") or 0)
        if resume_at > time.time():
            return PushResult(backing_off_seconds=resume_at - time.time(), skipped="backing off")
        if not try_lock():
            return PushResult(skipped="locked")
        try:
            result = push_batch(batch_size)
        finally:
            unlock()
        if result.stopped_early:
            failures = backoff.hincrby(BACKOFF_KEY, "failures", 1)
            delay = max(result.backing_off_seconds, backoff_seconds(failures))
            backoff.hset(BACKOFF_KEY, "resume_at", str(time.time() + delay))
            return PushResult(result.rows, result.reported, result.set_aside, True, delay)
        backoff.delete(BACKOFF_KEY)
        return result


def backoff_seconds(failures: int) -> float:
    """Exponential, capped, with full jitter on top of half of it."""
    ceiling = min(MAX_BACKOFF_SECONDS, BASE_BACKOFF_SECONDS * float(2 ** min(failures - 1, 16)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not a secret


def try_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        row = cursor.fetchone()
    return bool(row and row[0])


def unlock() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_KEY])


def pending_rows(batch_size: int) -> list[tuple[int, str, int, int]]:
    """(row id, Stripe customer, tokens, served at) of the next rows to report, oldest first."""
    rows = (
        UsageEvent.objects.filter(
            meter_reported_at__isnull=True,
            meter_error="",
            tenant__billing_account__stripe_customer_id__isnull=False,
            created_at__gte=F("tenant__billing_account__subscription_created_at"),
        )
        # Served while subscribed: rows not yet reported when the subscription ended
        # still belong to its last period's invoice.
        .filter(
            Q(tenant__billing_account__subscription_status__in=LIVE_STATUSES)
            | Q(created_at__lte=F("tenant__billing_account__current_period_end"))
        )
        .order_by("id")
        .values_list(
            "id",
            "tenant__billing_account__stripe_customer_id",
            "prompt_tokens",
            "completion_tokens",
            "created_at",
        )[:batch_size]
    )
    pending: list[tuple[int, str, int, int]] = []
    for pk, customer, prompt, completion, served_at in rows:
        if customer is not None:  # always, by the filter; this tells the type checker
            pending.append((pk, customer, prompt + completion, int(served_at.timestamp())))
    return pending


def push_batch(batch_size: int) -> PushResult:
    try:
        client = stripe_client()
    except StripeNotConfiguredError:
        return PushResult(skipped="offline")
    reported = set_aside = 0
    oldest_allowed = int((timezone.now() - MAX_EVENT_AGE).timestamp())
    rows = pending_rows(batch_size)
    for pk, customer, tokens, served_at in rows:
        if tokens == 0:  # nothing to bill: no event
            mark_reported(pk)
            continue
        if served_at < oldest_allowed:
            set_aside += set_aside_row(pk, "older than Stripe accepts meter events")
            continue
        try:
            send(client, pk, customer, tokens, served_at)
        except RetryLaterError as error:
            logger.warning("meter events: stopping at row %s: %s", pk, error)
            return PushResult(len(rows), reported, set_aside, True, error.delay_seconds)
        except stripe.InvalidRequestError as error:
            set_aside += set_aside_row(pk, f"refused by Stripe: {error.user_message or error}")
            continue
        mark_reported(pk)
        reported += 1
    return PushResult(len(rows), reported, set_aside)


def send(client: stripe.StripeClient, pk: int, customer: str, tokens: int, served_at: int) -> None:
    """One meter event; returns when Stripe counts it (now or before)."""
    try:
        client.v1.billing.meter_events.create(
            params={
                "event_name": settings.STRIPE_METER_EVENT_NAME,
                "identifier": str(pk),
                "timestamp": served_at,
                "payload": {"stripe_customer_id": customer, "value": str(tokens)},
            },
            # A second guard besides the identifier: a resend gets the first answer back.
            options={"idempotency_key": f"meter-event-{pk}"},
        )
    except stripe.InvalidRequestError as error:
        if not is_duplicate(error):
            raise
    except (stripe.RateLimitError, stripe.APIConnectionError) as error:
        raise RetryLaterError(retry_after_seconds(error), type(error).__name__) from error
    except stripe.APIError as error:
        raise RetryLaterError(retry_after_seconds(error), f"Stripe answered {error.http_status}") from error


def is_duplicate(error: stripe.InvalidRequestError) -> bool:
    """Stripe's answer to an identifier it has already counted: 400, "An event
    already exists with identifier ..."."""
    message = str(error.user_message or "")
    return error.http_status == 400 and "already exists" in message and "identifier" in message


def retry_after_seconds(error: stripe.StripeError) -> float:
    """Stripe's Retry-After in seconds (bounded), or 0 when it sent none."""
    value = (error.headers or {}).get("retry-after") or (error.headers or {}).get("Retry-After")
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_SECONDS) if value else 0.0
    except ValueError:
        return 0.0


def mark_reported(pk: int) -> None:
    UsageEvent.objects.filter(pk=pk, meter_reported_at__isnull=True).update(meter_reported_at=timezone.now())


def set_aside_row(pk: int, reason: str) -> int:
    logger.error("meter events: row %s set aside: %s", pk, reason)
    return UsageEvent.objects.filter(pk=pk, meter_reported_at__isnull=True).update(meter_error=reason[:500])
