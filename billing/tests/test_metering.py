"""Meter events: each ledger row reaches Stripe exactly once, with its id as the
identifier, even when the pusher is killed right after Stripe counted a row;
Stripe's 429 and Retry-After hold the next push back.

Rows are committed (a pusher process must see them) on the `serving` tenant,
and deleted afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone
from pytest_django import Settings

from billing import metering, tasks
from billing.models import BillingAccount, SubscriptionStatus, UsageEvent
from billing.stripe_api import stripe_client
from billing.tests.factories import BillingAccountFactory, UsageEventFactory
from testing.database import committed
from testing.stripe_server import StripeStandIn
from testing.tenants import TenantFixture


@pytest.fixture
def metered(stripe: StripeStandIn, serving_tenant: TenantFixture) -> Iterator[tuple[str, list[UsageEvent]]]:
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


def push(batch_size: int = 100) -> metering.PushResult:
    """Push on a connection of its own, as a worker would: the marks commit, and the
    test's own transaction holds no row lock the cleanup would wait for."""
    return committed(lambda: metering.push_meter_events(batch_size=batch_size))


def clear_backoff() -> None:
    with redis.Redis.from_url(settings.REDIS_URL) as client:
        client.delete(metering.BACKOFF_KEY)


def billed_rows(rows: list[UsageEvent]) -> list[UsageEvent]:
    return [row for row in rows if row.prompt_tokens + row.completion_tokens > 0]


def assert_each_row_reported_once(server: StripeStandIn, customer: str, rows: list[UsageEvent]) -> None:
    billed = billed_rows(rows)
    assert sorted(server.meter_events) == sorted(str(row.pk) for row in billed)
    for row in billed:
        event = server.meter_events[str(row.pk)]
        assert event["event_name"] == settings.STRIPE_METER_EVENT_NAME
        assert event["payload"] == {
            "stripe_customer_id": customer,
            "value": str(row.prompt_tokens + row.completion_tokens),
        }
        assert event["timestamp"] == int(row.created_at.timestamp())
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
    assert push().reported == 0
    assert stripe.duplicate_meter_events == 0


def test_the_task_drains_batch_after_batch(
    stripe: StripeStandIn, metered: tuple[str, list[UsageEvent]]
) -> None:
    customer, rows = metered

    totals = committed(lambda: tasks.push_meter_events(batch_size=5))

    assert totals == {"rows": 12, "reported": 11, "set_aside": 0}
    assert_each_row_reported_once(stripe, customer, rows)


def test_rows_before_the_subscription_or_of_unsubscribed_tenants_are_not_reported(
    stripe: StripeStandIn, metered: tuple[str, list[UsageEvent]], tenant: TenantFixture
) -> None:
    _, rows = metered
    early = UsageEventFactory.create(
        tenant=rows[0].tenant, prompt_tokens=5, created_at=rows[0].created_at - timedelta(days=1)
    )
    unsubscribed = UsageEventFactory.create(tenant=tenant.tenant, prompt_tokens=5)

    assert push().reported == 11  # the subscription's own rows went

    assert str(early.pk) not in stripe.meter_events
    assert str(unsubscribed.pk) not in stripe.meter_events


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
        assert str(later.pk) not in stripe.meter_events
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
print(metering.push_meter_events(batch_size=100), flush=True)
"""


def test_a_pusher_killed_right_after_stripe_counted_a_row_still_reports_each_row_once(
    stripe: StripeStandIn, metered: tuple[str, list[UsageEvent]]
) -> None:
    customer, rows = metered
    environment = {**os.environ, "STRIPE_SECRET_KEY": "sk_test_standin", "STRIPE_API_BASE": stripe.url}
    process = subprocess.Popen(  # noqa: S603 - our interpreter, our script
        [sys.executable, "-c", DOOMED_PUSHER, connection.settings_dict["NAME"]],
        cwd=settings.BASE_DIR,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def kill_after_the_fifth(event: dict[str, Any]) -> None:
        # Stripe has stored the fifth event; its answer never reaches the pusher.
        if len(stripe.meter_events) == 5:
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
    assert len(stripe.meter_events) == 5
    stripe.on_meter_event = None

    result = successor_push()

    assert result.reported == 7  # the one Stripe had but the pusher never marked, and the six after it
    assert stripe.duplicate_meter_events == 1  # that one, sent again with the same identifier
    assert_each_row_reported_once(stripe, customer, rows)


def successor_push() -> metering.PushResult:
    """Push once the dead pusher's session (and its advisory lock) is gone."""
    deadline = time.monotonic() + 10
    while True:
        result = push()
        if result.skipped != "locked" or time.monotonic() > deadline:
            return result
        time.sleep(0.1)
