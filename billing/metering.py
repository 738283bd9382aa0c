"""Usage reaches Stripe as Billing Meter events, pushed from the ledger in batches
on Stripe's v2 meter event stream (docs/decisions/0014).

Each ledger row with tokens, of a tenant with a live subscription, made since
that subscription started, becomes one meter event: `event_name`
STRIPE_METER_EVENT_NAME, payload {stripe_customer_id, value: tokens},
`identifier` "<STRIPE_METER_IDENTIFIER_PREFIX>:<row id>" (so deployments sharing
a Stripe account never collide), `timestamp` when the request was served.

Exactly once: a row is marked reported only after Stripe accepted the request
that carried it, and Stripe drops an event whose identifier it has seen in the
last 24 hours. So a pusher killed between Stripe's acceptance and the mark
sends the same identifiers again on its next run, and Stripe counts them once.

Refusals: Stripe validates each event later (customer, value, timestamp); what
it refuses at once is a whole request. A refused request is split in halves
until each refused event is alone: the others are marked, and a refused row
keeps Stripe's reason and is tried again after RETRY_REFUSED_AFTER, until it is
older than Stripe accepts and is set aside for good.

One pusher at a time: a PostgreSQL advisory lock held by the pusher's session,
released by the server when that session dies.

Backoff: a 429, a 5xx, a network failure or an authentication failure stops the
run; the next run waits for the larger of Stripe's Retry-After and an
exponential backoff with jitter (kept in Redis, so every worker honours it).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import stripe
from django.conf import settings
from django.db import connection
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context
from stripe.params.v2.billing import MeterEventStreamCreateParamsEvent

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
# Stripe's limit of events in one meter event stream request.
EVENTS_PER_REQUEST = 100
# A row whose event Stripe refused is tried again this long after (a customer fixed, say).
RETRY_REFUSED_AFTER = timedelta(minutes=10)
# A meter event session's token is renewed this long before it expires (it lasts 15 minutes).
SESSION_RENEWAL_MARGIN = timedelta(minutes=1)
IDENTIFIER_MAX_LENGTH = 100  # Stripe's


@dataclass(frozen=True)
class PushResult:
    rows: int = 0  # rows looked at; fewer than the batch size means none are left
    reported: int = 0  # rows Stripe now counts
    set_aside: int = 0  # rows Stripe refused (kept for a retry) or will never take
    stopped_early: bool = False  # Stripe asked to wait, failed or did not answer
    backing_off_seconds: float = 0.0  # how long the next run waits (Retry-After, or more)
    skipped: str = ""  # why nothing ran: "offline", "locked", "backing off"


@dataclass(frozen=True)
class PendingRow:
    pk: int
    customer: str
    tokens: int
    served_at: datetime


@dataclass
class BatchOutcome:
    """What Stripe did with one batch of rows: accepted, refused (row, reason), or
    not taken because Stripe asked to wait (then `retry_later` says how long)."""

    accepted: list[int] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    retry_later: RetryLaterError | None = None


class RetryLaterError(Exception):
    def __init__(self, delay_seconds: float, reason: str) -> None:
        super().__init__(reason)
        self.delay_seconds = delay_seconds


def push_meter_events(batch_size: int = 1000, events_per_request: int = EVENTS_PER_REQUEST) -> PushResult:
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
            result = push_batch(batch_size, events_per_request)
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


def meter_identifier(pk: int) -> str:
    """The row's identifier at Stripe: this deployment's prefix and the row id."""
    prefix = str(settings.STRIPE_METER_IDENTIFIER_PREFIX)
    if not prefix:
        raise ValueError("STRIPE_METER_IDENTIFIER_PREFIX is empty: identifiers would collide.")
    identifier = f"{prefix}:{pk}"
    if len(identifier) > IDENTIFIER_MAX_LENGTH:
        raise ValueError(f"STRIPE_METER_IDENTIFIER_PREFIX is too long for Stripe: {identifier}")
    return identifier


def meterable_rows() -> QuerySet[UsageEvent]:
    """Unreported rows of subscribed tenants, served while subscribed: rows not yet
    reported when the subscription ended still belong to its last period's invoice."""
    return UsageEvent.objects.filter(
        meter_reported_at__isnull=True,
        tenant__billing_account__stripe_customer_id__isnull=False,
        created_at__gte=F("tenant__billing_account__subscription_created_at"),
    ).filter(
        Q(tenant__billing_account__subscription_status__in=LIVE_STATUSES)
        | Q(created_at__lte=F("tenant__billing_account__current_period_end"))
    )


def pending_rows(batch_size: int) -> list[PendingRow]:
    """The next rows to report: refused rows whose retry is due, then new rows, oldest first
    (two queries, so that each uses its partial index)."""
    due = meterable_rows().filter(meter_retry_at__lte=timezone.now())
    fresh = meterable_rows().filter(meter_error="")
    rows = list(pending_values(due, batch_size))
    rows += pending_values(fresh, batch_size - len(rows))
    return rows


def pending_values(rows: QuerySet[UsageEvent], limit: int) -> Iterator[PendingRow]:
    if limit <= 0:
        return
    values = rows.order_by("id").values_list(
        "id",
        "tenant__billing_account__stripe_customer_id",
        "prompt_tokens",
        "completion_tokens",
        "created_at",
    )
    for pk, customer, prompt, completion, served_at in values[:limit]:
        if customer is not None:  # always, by the filter; this tells the type checker
            yield PendingRow(pk, customer, prompt + completion, served_at)


def push_batch(batch_size: int, events_per_request: int) -> PushResult:
    try:
        client = stripe_client()
    except StripeNotConfiguredError:
        return PushResult(skipped="offline")
    rows = pending_rows(batch_size)
    oldest_allowed = timezone.now() - MAX_EVENT_AGE
    mark_reported([row.pk for row in rows if row.tokens == 0])  # nothing to bill: no event
    too_old = [row.pk for row in rows if row.tokens and row.served_at < oldest_allowed]
    set_aside = set_aside_rows(too_old, "older than Stripe accepts meter events")
    sendable = [row for row in rows if row.tokens and row.served_at >= oldest_allowed]
    reported, refused, retry_later = send_all(MeterStream(client), chunks(sendable, events_per_request))
    if retry_later is not None:
        logger.warning("meter events: stopping: %s", retry_later)
        return PushResult(len(rows), reported, set_aside + refused, True, retry_later.delay_seconds)
    return PushResult(len(rows), reported, set_aside + refused)


def chunks(rows: list[PendingRow], size: int) -> list[list[PendingRow]]:
    return [rows[start : start + size] for start in range(0, len(rows), size)]


def send_all(stream: MeterStream, batches: list[list[PendingRow]]) -> tuple[int, int, RetryLaterError | None]:
    """Send the batches, STRIPE_METER_PUSH_CONCURRENCY at a time, marking each as Stripe
    answers it. Once Stripe asks to wait, batches not yet sent stay unsent.
    Returns (rows reported, rows refused, why the run stopped or None)."""
    if not batches:
        return 0, 0, None
    try:
        with stripe_trouble_as_retry_later():
            stream.token()  # opened (or reused) once, before any thread needs it
    except RetryLaterError as error:
        return 0, 0, error
    stop = threading.Event()
    reported = refused = 0
    retry_later: RetryLaterError | None = None

    def send(batch: list[PendingRow]) -> BatchOutcome:
        if stop.is_set():
            return BatchOutcome()
        outcome = stream.send(batch)
        if outcome.retry_later is not None:
            stop.set()
        return outcome

    workers = max(1, int(settings.STRIPE_METER_PUSH_CONCURRENCY))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="meter-push") as executor:
        for outcome in executor.map(send, batches):
            reported += mark_reported(outcome.accepted)
            refused += keep_for_retry(outcome.refused)
            retry_later = retry_later or outcome.retry_later
    return reported, refused, retry_later


class MeterStream:
    """Stripe's v2 meter event stream: a meter event session's token (created with the
    secret key, renewed before it expires) authenticates batches of up to 100 events.
    Safe to share between threads."""

    def __init__(self, client: stripe.StripeClient) -> None:
        self.client = client

    def send(self, batch: list[PendingRow]) -> BatchOutcome:
        """Send one batch; a refused one is split until each refused event is alone."""
        try:
            self.post(batch)
        except RetryLaterError as error:
            return BatchOutcome(retry_later=error)
        except stripe.InvalidRequestError as error:
            if len(batch) == 1:
                return BatchOutcome(
                    refused=[(batch[0].pk, f"refused by Stripe: {error.user_message or error}")]
                )
            middle = len(batch) // 2
            return merge(self.send(batch[:middle]), self.send(batch[middle:]))
        return BatchOutcome(accepted=[row.pk for row in batch])

    def post(self, batch: list[PendingRow]) -> None:
        events = [meter_event(row) for row in batch]
        with stripe_trouble_as_retry_later():
            token = self.token()
            try:
                self.client.v2.billing.meter_event_stream.create({"events": events}, {"api_key": token})
            except stripe.TemporarySessionExpiredError:
                renewed = self.token(expired=token)
                self.client.v2.billing.meter_event_stream.create({"events": events}, {"api_key": renewed})

    def token(self, expired: str = "") -> str:
        """The session's token, shared by this process's pushers until it nearly expires
        (or Stripe said `expired` had: one thread renews it, the others take the new one)."""
        key = (settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE)
        with SESSIONS_LOCK:
            session = SESSIONS.get(key)
            if (
                session is None
                or session[0] == expired
                or session[1] - SESSION_RENEWAL_MARGIN < timezone.now()
            ):
                created = self.client.v2.billing.meter_event_session.create()
                session = (created.authentication_token, parse_time(created.expires_at))
                SESSIONS[key] = session
            return session[0]


@contextmanager
def stripe_trouble_as_retry_later() -> Iterator[None]:
    """Stripe asking to wait, failing, not answering or refusing our credentials: stop."""
    try:
        yield
    except (stripe.RateLimitError, stripe.APIConnectionError) as error:
        raise RetryLaterError(retry_after_seconds(error), type(error).__name__) from error
    except (stripe.AuthenticationError, stripe.PermissionError, stripe.TemporarySessionExpiredError) as error:
        raise RetryLaterError(0.0, f"Stripe refused our credentials: {error}") from error
    except stripe.APIError as error:
        raise RetryLaterError(retry_after_seconds(error), f"Stripe answered {error.http_status}") from error


# (secret key, API base) -> (session token, expires at); sessions outlive one run.
SESSIONS: dict[tuple[str, str], tuple[str, datetime]] = {}
SESSIONS_LOCK = threading.Lock()


def meter_event(row: PendingRow) -> MeterEventStreamCreateParamsEvent:
    return {
        "event_name": settings.STRIPE_METER_EVENT_NAME,
        "identifier": meter_identifier(row.pk),
        "timestamp": format_time(row.served_at),
        "payload": {"stripe_customer_id": row.customer, "value": str(row.tokens)},
    }


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC at whole seconds, as v2 writes times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def merge(first: BatchOutcome, second: BatchOutcome) -> BatchOutcome:
    return BatchOutcome(
        first.accepted + second.accepted,
        first.refused + second.refused,
        first.retry_later or second.retry_later,
    )


def retry_after_seconds(error: stripe.StripeError) -> float:
    """Stripe's Retry-After in seconds (bounded), or 0 when it sent none."""
    value = (error.headers or {}).get("retry-after") or (error.headers or {}).get("Retry-After")
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_SECONDS) if value else 0.0
    except ValueError:
        return 0.0


def mark_reported(pks: Iterable[int]) -> int:
    return UsageEvent.objects.filter(pk__in=list(pks), meter_reported_at__isnull=True).update(
        meter_reported_at=timezone.now(), meter_error="", meter_retry_at=None
    )


def keep_for_retry(refusals: list[tuple[int, str]]) -> int:
    retry_at = timezone.now() + RETRY_REFUSED_AFTER
    for pk, reason in refusals:
        logger.error("meter events: row %s refused, retrying after %s: %s", pk, retry_at, reason)
        UsageEvent.objects.filter(pk=pk, meter_reported_at__isnull=True).update(
            meter_error=reason[:500], meter_retry_at=retry_at
        )
    return len(refusals)


def set_aside_rows(pks: list[int], reason: str) -> int:
    if pks:
        logger.error("meter events: rows %s set aside: %s", pks, reason)
    return UsageEvent.objects.filter(pk__in=pks, meter_reported_at__isnull=True).update(
        meter_error=reason[:500], meter_retry_at=None
    )
