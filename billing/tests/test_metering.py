"""Meter events on Stripe's v2 meter event stream: each ledger row reaches Stripe
exactly once, identified by the deployment's prefix and its id, in batches on a
session that is renewed when it expires, even when the pusher is killed right
after Stripe took a batch; a refused request costs only its refused rows, kept
for a retry; Stripe's 429, Retry-After and outages hold the next push back.

Rows are committed (a pusher process must see them) on the `serving` tenant,
and deleted afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, timedelta
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone
from pytest_django import Settings

from billing import metering, tasks
from billing.models import BillingAccount, StripeEvent, SubscriptionStatus, UsageEvent
from billing.selectors import invoice_preview
from billing.stripe_api import stripe_client
from billing.tests.factories import BillingAccountFactory, UsageEventFactory, customer_paying_by_card
from billing.tests.test_stripe_webhooks import deliver, eager_tasks, event_of, stripe_plan  # noqa: F401 - a fixture
from tenants.models import Tenant
from testing.database import committed
from testing.stripe_server import StripeStandIn, expire_meter_event_sessions
from testing.tenants import TenantFixture

PREFIX = "eu.aiaas.test"


@pytest.fixture
def stream(stripe: StripeStandIn, settings: Settings) -> StripeStandIn:
    """The stand-in's meter events host, this deployment's identifier prefix, no faults."""
    settings.STRIPE_METER_EVENTS_API_BASE = stripe.meter_events_url
    settings.STRIPE_METER_IDENTIFIER_PREFIX = PREFIX
    settings.STRIPE_METER_PUSH_CONCURRENCY = 4
    stripe.meter_event_errors.clear()
    stripe.stream_requests = 0
    stripe.refuse_event = None
    return stripe


@pytest.fixture
def metered(stream: StripeStandIn, serving_tenant: TenantFixture) -> Iterator[tuple[str, list[UsageEvent]]]:
    """serving with a live subscription and 12 committed ledger rows (one without tokens)."""
    tenant = serving_tenant.tenant
    customer = stripe_client().v1.customers.create(params={"name": tenant.name}).id
    started = timezone.now() - timedelta(hours=1)

    def setup() -> list[UsageEvent]:
        BillingAccountFactory.create(
            tenant_id=tenant.pk, stripe_customer_id=customer, current_period_start=started
        )
        return [
            UsageEventFactory.create(
                tenant=tenant,
                prompt_tokens=0 if n == 0 else 10 * n,
                completion_tokens=0 if n == 0 else n,
                created_at=started + timedelta(minutes=n),
            )
            for n in range(12)
        ]

    rows = committed(setup)
    clear_backoff()
    try:
        yield customer, rows
    finally:
        clear_backoff()

        def undo() -> None:
            UsageEvent.objects.filter(pk__in=[row.pk for row in rows]).delete()
            BillingAccount.objects.filter(tenant=tenant).delete()

        committed(undo)


def push(batch_size: int = 100, events_per_request: int = metering.EVENTS_PER_REQUEST) -> metering.PushResult:
    """Push on a connection of its own, as a worker would: the marks commit, and the
    test's own transaction holds no row lock the cleanup would wait for."""
    return committed(lambda: metering.push_meter_events(batch_size, events_per_request))


def identifier(row: UsageEvent, prefix: str = PREFIX) -> str:
    return f"{prefix}:{row.pk}"


def clear_backoff() -> None:
    with redis.Redis.from_url(settings.REDIS_URL) as client:
        client.delete(metering.BACKOFF_KEY)


def billed_rows(rows: list[UsageEvent]) -> list[UsageEvent]:
    return [row for row in rows if row.prompt_tokens + row.completion_tokens > 0]


def assert_each_row_reported_once(server: StripeStandIn, customer: str, rows: list[UsageEvent]) -> None:
    billed = billed_rows(rows)
    assert sorted(server.meter_events) == sorted(identifier(row) for row in billed)
    for row in billed:
        event = server.meter_events[identifier(row)]
        assert event["object"] == "v2.billing.meter_event"
        assert event["event_name"] == settings.STRIPE_METER_EVENT_NAME
        assert event["payload"] == {
            "stripe_customer_id": customer,
            "value": str(row.prompt_tokens + row.completion_tokens),
        }
        assert event["timestamp"] == row.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert (
        UsageEvent.objects.filter(pk__in=[row.pk for row in rows], meter_reported_at__isnull=True).count()
        == 0
    )


def test_each_row_with_tokens_becomes_one_meter_event(
    stripe: StripeStandIn, metered: tuple[str, list[UsageEvent]]
) -> None:
    customer, rows = metered

    result = push()

    assert (result.reported, result.set_aside, result.stopped_early) == (11, 0, False)
    assert_each_row_reported_once(stripe, customer, rows)
    assert stripe.stream_requests == 1  # one batch of 11
    assert push().reported == 0
    assert stripe.stream_requests == 1
    assert stripe.duplicate_meter_events == 0


def test_the_task_drains_batch_after_batch(
    stripe: StripeStandIn, metered: tuple[str, list[UsageEvent]]
) -> None:
    customer, rows = metered

    totals = committed(lambda: tasks.push_meter_events(batch_size=5))

    assert totals == {"rows": 12, "reported": 11, "set_aside": 0}
    assert_each_row_reported_once(stripe, customer, rows)


def test_rows_go_in_requests_of_up_to_the_batch_size_on_one_session(
    stripe: StripeStandIn, metered: tuple[str, list[UsageEvent]]
) -> None:
    customer, rows = metered
    sessions_before = len(stripe.meter_event_sessions)

    result = push(events_per_request=5)

    assert (result.rows, result.reported, result.stopped_early) == (12, 11, False)
    assert stripe.stream_requests == 3  # 5 + 5 + 1 events
    assert len(stripe.meter_event_sessions) - sessions_before <= 1  # one session, reused if still valid
    assert_each_row_reported_once(stripe, customer, rows)


def test_an_expired_session_is_renewed_and_the_batch_sent_again(
    stripe: StripeStandIn, metered: tuple[str, list[UsageEvent]]
) -> None:
    customer, rows = metered
    push(batch_size=2)  # a session exists and is cached
    sessions_before = len(stripe.meter_event_sessions)
    expire_meter_event_sessions()

    result = push()

    assert (result.reported, result.stopped_early) == (10, False)
    assert len(stripe.meter_event_sessions) == sessions_before + 1
    assert stripe.duplicate_meter_events == 0
    assert_each_row_reported_once(stripe, customer, rows)


def test_a_refused_request_marks_its_accepted_rows_and_keeps_the_refused_ones_for_a_retry(
    stream: StripeStandIn, metered: tuple[str, list[UsageEvent]], tenant: TenantFixture
) -> None:
    """Stripe refuses a whole request (here: events of a customer it does not have); the
    pusher splits it until the refused events are alone."""
    customer, rows = metered
    stale = committed(lambda: stale_customer_rows(tenant, rows[0].created_at))
    stream.refuse_event = lambda event: (
        "No such customer: 'cus_gone'" if event["payload"]["stripe_customer_id"] == "cus_gone" else None
    )
    try:
        result = push()

        assert (result.reported, result.set_aside, result.stopped_early) == (11, 3, False)
        assert_each_row_reported_once(stream, customer, rows)
        kept = committed(lambda: list(UsageEvent.objects.filter(pk__in=[row.pk for row in stale])))
        assert {row.meter_error for row in kept} == {"refused by Stripe: No such customer: 'cus_gone'"}
        assert all(row.meter_reported_at is None and row.meter_retry_at is not None for row in kept)
        assert all(row.meter_retry_at > timezone.now() + timedelta(minutes=9) for row in kept)  # type: ignore[operator]
        requests = stream.stream_requests
        assert push().reported == 0  # not due yet: nothing is sent
        assert stream.stream_requests == requests

        # The customer is fixed and the retry comes due: the rows go, and the reason is cleared.
        fixed = stripe_client().v1.customers.create(params={"name": "fixed"}).id
        committed(lambda: fix_customer(tenant, fixed, [row.pk for row in stale]))
        assert push().reported == 3
        done = committed(lambda: list(UsageEvent.objects.filter(pk__in=[row.pk for row in stale])))
        assert {(row.meter_error, row.meter_retry_at) for row in done} == {("", None)}
        assert all(
            stream.meter_events[identifier(row)]["payload"]["stripe_customer_id"] == fixed for row in stale
        )
        assert stream.duplicate_meter_events == 0
    finally:
        committed(lambda: forget_rows(tenant, stale))


def stale_customer_rows(tenant: TenantFixture, started: Any) -> list[UsageEvent]:
    BillingAccountFactory.create(
        tenant=tenant.tenant, stripe_customer_id="cus_gone", current_period_start=started
    )
    return [
        UsageEventFactory.create(
            tenant=tenant.tenant, prompt_tokens=7, created_at=started + timedelta(seconds=n)
        )
        for n in range(3)
    ]


def fix_customer(tenant: TenantFixture, customer: str, pks: list[int]) -> None:
    BillingAccount.objects.filter(tenant=tenant.tenant).update(stripe_customer_id=customer)
    UsageEvent.objects.filter(pk__in=pks).update(meter_retry_at=timezone.now())


def forget_rows(tenant: TenantFixture, rows: list[UsageEvent]) -> None:
    UsageEvent.objects.filter(pk__in=[row.pk for row in rows]).delete()
    BillingAccount.objects.filter(tenant=tenant.tenant).delete()


def test_two_deployments_sharing_a_stripe_account_never_collide(
    stream: StripeStandIn, metered: tuple[str, list[UsageEvent]], settings: Settings
) -> None:
    """Another deployment's ledger has rows with the same ids; its prefix keeps them apart."""
    _, rows = metered
    assert push().reported == 11
    pks = [row.pk for row in rows]
    committed(lambda: UsageEvent.objects.filter(pk__in=pks).update(meter_reported_at=None))
    settings.STRIPE_METER_IDENTIFIER_PREFIX = "us.aiaas.test"

    assert push().reported == 11

    billed = billed_rows(rows)
    assert sorted(stream.meter_events) == sorted(
        [identifier(row) for row in billed] + [identifier(row, "us.aiaas.test") for row in billed]
    )
    assert stream.duplicate_meter_events == 0


def test_an_identifier_prefix_must_be_set_and_fit_stripes_limit(settings: Settings) -> None:
    settings.STRIPE_METER_IDENTIFIER_PREFIX = ""
    with pytest.raises(ValueError, match="empty"):
        metering.meter_identifier(1)
    settings.STRIPE_METER_IDENTIFIER_PREFIX = "x" * 90
    with pytest.raises(ValueError, match="too long"):
        metering.meter_identifier(12_345_678_901)
    settings.STRIPE_METER_IDENTIFIER_PREFIX = "aiaas.example.com"
    assert metering.meter_identifier(42) == "aiaas.example.com:42"


@pytest.mark.parametrize(
    "host", ["STRIPE_METER_EVENTS_API_BASE", "STRIPE_API_BASE"], ids=["stream", "sessions"]
)
def test_a_stripe_outage_stops_the_push_at_once_and_later_runs_back_off(
    stream: StripeStandIn, metered: tuple[str, list[UsageEvent]], settings: Settings, host: str
) -> None:
    customer, rows = metered
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        setattr(settings, host, "http://{}:{}".format(*closed.getsockname()))

    result = push()

    assert result.stopped_early
    assert result.reported == 0
    assert metering.BASE_BACKOFF_SECONDS / 2 <= result.backing_off_seconds <= metering.BASE_BACKOFF_SECONDS
    started = time.monotonic()
    assert push().skipped == "backing off"
    assert time.monotonic() - started < 1.0  # a worker is never held while Stripe is down
    pending = UsageEvent.objects.filter(pk__in=[row.pk for row in billed_rows(rows)], meter_reported_at=None)
    assert committed(pending.count) == 11

    # Stripe answers again and the backoff has run out: each row counted once.
    setattr(settings, host, {"STRIPE_API_BASE": stream.url}.get(host, stream.meter_events_url))
    clear_backoff()
    assert push().reported == 11
    assert stream.duplicate_meter_events == 0
    assert_each_row_reported_once(stream, customer, rows)


def test_rows_before_the_subscription_or_of_unsubscribed_tenants_are_not_reported(
    stripe: StripeStandIn, metered: tuple[str, list[UsageEvent]], tenant: TenantFixture
) -> None:
    _, rows = metered
    early = UsageEventFactory.create(
        tenant=rows[0].tenant, prompt_tokens=5, created_at=rows[0].created_at - timedelta(days=1)
    )
    unsubscribed = UsageEventFactory.create(tenant=tenant.tenant, prompt_tokens=5)

    assert push().reported == 11  # the subscription's own rows went

    assert identifier(early) not in stripe.meter_events
    assert identifier(unsubscribed) not in stripe.meter_events


def test_rows_served_before_a_subscription_ended_are_still_reported(
    stripe: StripeStandIn, metered: tuple[str, list[UsageEvent]]
) -> None:
    """Unreported when the subscription was canceled (backoff, flush lag): they belong
    to its last invoice. Rows served after its last period are not reported."""
    customer, rows = metered
    committed(
        lambda: BillingAccount.objects.filter(tenant=rows[0].tenant).update(
            subscription_status=SubscriptionStatus.CANCELED, current_period_end=rows[-1].created_at
        )
    )
    later = committed(
        lambda: UsageEventFactory.create(
            tenant=rows[0].tenant, prompt_tokens=5, created_at=rows[-1].created_at + timedelta(minutes=1)
        )
    )
    try:
        assert push().reported == 11
        assert_each_row_reported_once(stripe, customer, rows)
        assert identifier(later) not in stripe.meter_events
    finally:
        committed(lambda: UsageEvent.objects.filter(pk=later.pk).delete())


def test_a_429_stops_the_push_and_the_next_waits_for_retry_after(
    stripe: StripeStandIn, metered: tuple[str, list[UsageEvent]]
) -> None:
    customer, rows = metered
    stripe.rate_limited_calls, stripe.retry_after = 1, "7"

    first = push()

    assert first.stopped_early
    assert first.reported == 0  # the zero-token row is marked without an event, the next one was refused
    assert 7 <= first.backing_off_seconds <= 7 + metering.BASE_BACKOFF_SECONDS
    held = push()
    assert held.skipped == "backing off"
    assert 6 < held.backing_off_seconds <= first.backing_off_seconds
    assert stripe.meter_events == {}

    clear_backoff()  # as if the wait were over
    assert push().reported == 11
    assert_each_row_reported_once(stripe, customer, rows)


def test_a_429_without_retry_after_backs_off_exponentially(
    stripe: StripeStandIn, metered: tuple[str, list[UsageEvent]]
) -> None:
    stripe.rate_limited_calls, stripe.retry_after = 1, ""

    result = push()

    assert result.stopped_early
    assert metering.BASE_BACKOFF_SECONDS / 2 <= result.backing_off_seconds <= metering.BASE_BACKOFF_SECONDS


def test_offline_nothing_is_pushed(
    metered: tuple[str, list[UsageEvent]], stripe: StripeStandIn, settings: Settings
) -> None:
    settings.STRIPE_SECRET_KEY = ""

    assert push().skipped == "offline"
    assert stripe.meter_events == {}


DOOMED_PUSHER = """
import os, sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiaas.settings")
from django.conf import settings

settings.DATABASES["default"]["NAME"] = sys.argv[1]
import django

django.setup()
from billing import metering, tasks

print("pushing", flush=True)
print(metering.push_meter_events(batch_size=100, events_per_request=4), flush=True)
"""


def test_a_pusher_killed_right_after_stripe_counted_a_row_still_reports_each_row_once(
    stripe: StripeStandIn, metered: tuple[str, list[UsageEvent]]
) -> None:
    customer, rows = metered
    environment = {
        **os.environ,
        "STRIPE_SECRET_KEY": "sk_test_standin",
        "STRIPE_API_BASE": stripe.url,
        "STRIPE_METER_EVENTS_API_BASE": stripe.meter_events_url,
        "STRIPE_METER_IDENTIFIER_PREFIX": PREFIX,
        "STRIPE_METER_PUSH_CONCURRENCY": "1",  # batches in order
    }
    process = subprocess.Popen(  # noqa: S603 - our interpreter, our script
        [sys.executable, "-c", DOOMED_PUSHER, connection.settings_dict["NAME"]],
        cwd=settings.BASE_DIR,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def kill_after_the_fifth(event: dict[str, Any]) -> None:
        # Stripe has stored the second batch (rows 5-8); its answer never reaches the pusher.
        if len(stripe.meter_events) > 4 and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(10)

    stripe.on_meter_event = kill_after_the_fifth
    try:
        process.wait(60)
        _, errors = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == -signal.SIGKILL, errors
    assert len(stripe.meter_events) == 8  # two batches of four
    # The second batch goes while the first one's rows are being marked: the kill may
    # land before that mark commits.
    unreported = committed(
        UsageEvent.objects.filter(pk__in=[row.pk for row in rows], meter_reported_at__isnull=True).count
    )
    assert unreported in (7, 11)
    stripe.on_meter_event = None

    result = successor_push()

    assert result.reported == unreported  # those Stripe had but the pusher never marked, and the three after
    assert stripe.duplicate_meter_events == unreported - 3  # sent again with the same identifiers
    assert_each_row_reported_once(stripe, customer, rows)


def successor_push() -> metering.PushResult:
    """Push once the dead pusher's session (and its advisory lock) is gone."""
    deadline = time.monotonic() + 10
    while True:
        result = push()
        if result.skipped != "locked" or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def test_a_429_mid_run_keeps_the_batches_stripe_took_and_sends_the_rest_later(
    stream: StripeStandIn, metered: tuple[str, list[UsageEvent]], settings: Settings
) -> None:
    customer, rows = metered
    settings.STRIPE_METER_PUSH_CONCURRENCY = 1
    pushed = []

    def rate_limit_after_the_first_batch(event: dict[str, Any]) -> None:
        pushed.append(event)
        if len(pushed) == 4:  # the first batch is stored: the next call gets a 429
            stream.rate_limited_calls, stream.retry_after = 1, "3"

    stream.on_meter_event = rate_limit_after_the_first_batch

    first = push(events_per_request=4)

    assert (first.reported, first.stopped_early) == (4, True)
    assert len(stream.meter_events) == 4
    clear_backoff()
    assert push(events_per_request=4).reported == 7
    assert stream.duplicate_meter_events == 0
    assert_each_row_reported_once(stream, customer, rows)


def test_an_event_for_a_customer_stripe_lacks_is_accepted_and_only_reported_later(
    stream: StripeStandIn, metered: tuple[str, list[UsageEvent]], tenant: TenantFixture
) -> None:
    """Stripe validates streamed events after accepting them (docs/decisions/0014): such a
    row is marked, not counted, and shows only in Stripe's error reports."""
    customer, rows = metered
    stale = committed(lambda: stale_customer_rows(tenant, rows[0].created_at))
    try:
        assert push().reported == 14

        assert_each_row_reported_once(stream, customer, rows)
        assert sorted(error["identifier"] for error in stream.meter_event_errors) == sorted(
            identifier(row) for row in stale
        )
        assert {error["code"] for error in stream.meter_event_errors} == {"meter_event_customer_not_found"}
    finally:
        committed(lambda: forget_rows(tenant, stale))


def test_rows_served_after_a_subscription_was_cancelled_mid_period_are_not_reported(
    stream: StripeStandIn,
    serving_tenant: TenantFixture,
    eager_tasks: None,  # noqa: F811 - the fixture
) -> None:
    """Cancelled at once in the portal, mid-period: Stripe keeps the period's end on the
    subscription, but the tenant is on the free plan from the cancellation on; what it
    uses after is not the cancelled subscription's to bill."""
    tenant = serving_tenant.tenant
    client = stripe_client()
    price = f"price_cancelled_{uuid.uuid4().hex[:8]}"
    stripe_plan(price, 1000)
    customer = customer_paying_by_card(client, tenant.name)
    saved_plan_id = tenant.plan_id
    committed(lambda: BillingAccount.objects.create(tenant_id=tenant.pk, stripe_customer_id=customer))
    subscription = client.v1.subscriptions.create(params={"customer": customer, "items": [{"plan": price}]})
    events = [event_of("customer.subscription.created", subscription.to_dict())]
    rows: list[UsageEvent] = []
    try:
        deliver([events])
        time.sleep(1.1)  # Stripe's times are whole seconds
        rows.append(committed(lambda: UsageEventFactory.create(tenant=tenant, prompt_tokens=5)))
        time.sleep(1.1)
        cancelled = client.v1.subscriptions.cancel(subscription.id).to_dict()
        assert cancelled["current_period_end"] > cancelled["ended_at"] + 3600
        events.append(event_of("customer.subscription.deleted", cancelled))
        deliver([events[-1:]])
        rows.append(
            committed(
                lambda: UsageEventFactory.create(
                    tenant=tenant, prompt_tokens=7, created_at=timezone.now() + timedelta(seconds=1)
                )
            )
        )

        push()

        assert identifier(rows[0]) in stream.meter_events  # served while subscribed
        assert identifier(rows[1]) not in stream.meter_events
    finally:
        event_ids = [json.loads(event)["id"] for event in events]

        def undo() -> None:
            UsageEvent.objects.filter(pk__in=[row.pk for row in rows]).delete()
            StripeEvent.objects.filter(event_id__in=event_ids).delete()
            BillingAccount.objects.filter(tenant=tenant).delete()
            Tenant.objects.filter(pk=tenant.pk).update(plan_id=saved_plan_id)

        committed(undo)


def test_the_tokens_the_billing_page_shows_are_the_tokens_sent_to_stripe(
    stream: StripeStandIn, metered: tuple[str, list[UsageEvent]], serving_tenant: TenantFixture
) -> None:
    customer, rows = metered
    refused = committed(
        lambda: UsageEventFactory.create(
            tenant=rows[0].tenant, model="", status=429, error_type="tenant_request_budget"
        )
    )
    try:
        push()
        sent = sum(int(event["payload"]["value"]) for event in stream.meter_events.values())
        preview = committed(lambda: invoice_preview(Tenant.objects.get(pk=serving_tenant.tenant.pk)))
        page = committed(lambda: serving_tenant.web_client().get("/dashboard/billing/")).content.decode()
    finally:
        committed(lambda: UsageEvent.objects.filter(pk=refused.pk).delete())

    assert {event["payload"]["stripe_customer_id"] for event in stream.meter_events.values()} == {customer}
    assert sent == preview.used_tokens == sum(row.prompt_tokens + row.completion_tokens for row in rows) > 0
    assert f'id="billing-tokens">{preview.used_tokens:,} / ' in page
