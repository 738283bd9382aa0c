"""Billing's background work (queue "billing")."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import stripe
from django.utils import timezone

from aiaas.celery import app
from aiaas.stream_queue import drain
from billing import metering, partitions, subscriptions, usage
from billing.stripe_api import StripeNotConfiguredError

logger = logging.getLogger(__name__)

# Beat sends a flush every 2 s; one run stops after this long so runs do not
# pile up behind a backlog (the next one continues where it stopped).
FLUSH_TIME_BUDGET_SECONDS = 30.0
# One meter push drains batch after batch for at most this long (beat sends one every 30 s).
PUSH_TIME_BUDGET_SECONDS = 25.0
# A run that hangs anyway (a Stripe call stuck past its timeouts) is stopped, so the
# billing queue's worker is free for the ledger flush and webhooks.
PUSH_SOFT_TIME_LIMIT_SECONDS = 60
PUSH_TIME_LIMIT_SECONDS = 75
# A webhook event whose processing cannot reach Stripe is retried this often,
# with exponential backoff, before it is marked failed (a redelivery requeues it).
EVENT_MAX_RETRIES = 8
# A stored event not applied after this long is queued again (retry_stripe_events).
STALE_EVENT_AGE = timedelta(minutes=10)


# celery ships no types (pyproject.toml), so its decorators are untyped.
@app.task(name="billing.flush_usage_events", queue="billing", ignore_result=True)  # type: ignore[untyped-decorator]
def flush_usage_events(batch_size: int = 500, stream: str | None = None) -> int:
    """Drain the usage queue into the ledger, batch by batch, until a batch comes
    back short (the queue is empty) or the time budget is spent.

    A plain task, not a tenant task: the ledger spans tenants and lives in the
    public schema (the flush itself switches to it). Redelivery is harmless:
    flushing is idempotent and safe to run in several workers at once.
    """
    return drain(
        lambda size: usage.flush_usage_events(batch_size=size, stream=stream),
        batch_size,
        FLUSH_TIME_BUDGET_SECONDS,
    )


@app.task(  # type: ignore[untyped-decorator]
    name="billing.process_stripe_event",
    queue="billing",
    bind=True,
    ignore_result=True,
    max_retries=EVENT_MAX_RETRIES,
)
def process_stripe_event(self: Any, event_pk: int) -> str | None:
    """Apply a stored webhook event (billing/subscriptions.py). Idempotent, so
    redelivery and duplicates are harmless; a public-schema task, since
    billing lives there. Returns the event's new status."""
    try:
        outcome = subscriptions.process_event(event_pk)
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as error:
        if self.request.retries >= EVENT_MAX_RETRIES:
            subscriptions.mark_failed(event_pk, f"Stripe unreachable: {error}")
            return "failed"
        raise self.retry(exc=error, countdown=min(600, 2 ** (self.request.retries + 1))) from error
    except (stripe.StripeError, StripeNotConfiguredError, ValueError, KeyError) as error:
        logger.exception("stripe event %s failed", event_pk)
        subscriptions.mark_failed(event_pk, f"{type(error).__name__}: {error}")
        return "failed"
    return None if outcome is None else str(outcome.status)


@app.task(name="billing.retry_stripe_events", queue="billing", ignore_result=True)  # type: ignore[untyped-decorator]
def retry_stripe_events() -> int:
    """Queue again the stored webhook events still not applied after a while: Stripe
    had its 200, so it will not send them again, and a lost task (broker down when
    the webhook queued it, a worker dying) or a long Stripe outage must not leave a
    tenant on its old plan. Processing is idempotent."""
    stale = subscriptions.unapplied_events(older_than=timezone.now() - STALE_EVENT_AGE)
    for event_pk in stale:
        process_stripe_event.delay(event_pk)
    return len(stale)


@app.task(  # type: ignore[untyped-decorator]
    name="billing.push_meter_events",
    queue="billing",
    ignore_result=True,
    soft_time_limit=PUSH_SOFT_TIME_LIMIT_SECONDS,
    time_limit=PUSH_TIME_LIMIT_SECONDS,
)
def push_meter_events(batch_size: int = 1000) -> dict[str, Any]:
    """Report unreported ledger rows to Stripe as meter events (billing/metering.py),
    batch after batch until none are left, Stripe asks to wait, or the time
    budget is spent. Safe to run anywhere at once: one pusher holds the lock,
    the others return at once; a run killed at its time limit loses nothing
    (rows are marked after Stripe took them, and resent rows count once)."""
    totals = {"rows": 0, "reported": 0, "set_aside": 0}

    def push_batch(size: int) -> int:
        result = metering.push_meter_events(size)
        for name in totals:
            totals[name] += getattr(result, name)
        # A stop or a skip ends the drain like an empty queue would.
        return 0 if result.stopped_early or result.skipped else result.rows

    drain(push_batch, batch_size, PUSH_TIME_BUDGET_SECONDS)
    return totals


@app.task(name="billing.maintain_ledger_partitions", queue="billing", ignore_result=True)  # type: ignore[untyped-decorator]
def maintain_ledger_partitions() -> None:
    """The ledger's month partitions created ahead and dropped past retention
    (billing/partitions.py). Idempotent; runs one at a time (an advisory lock)."""
    done = partitions.maintain_ledger_partitions()
    logger.info("ledger partitions: %s", done)
