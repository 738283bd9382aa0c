"""Stripe webhooks: only verified requests write anything; every delivery
pattern (once, twice at once, five times, out of order) ends in the state one
in-order delivery gives, with each event stored once.

Stripe is the local stand-in (localstripe plus testing), driven by the
real stripe library. Delivery tests run each webhook request on a connection of
its own, committed, as a real server would, with Celery tasks run eagerly.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from pytest_django import Settings

from aiaas.celery import app
from billing import tasks
from billing.models import BillingAccount, EventStatus, Plan, StripeEvent, SubscriptionStatus
from billing.stripe_api import stripe_client
from billing.tests.conftest import OLD_WEBHOOK_SECRET, WEBHOOK_SECRET
from billing.tests.factories import customer_paying_by_card
from billing.tests.test_usage_ledger import billing_worker  # noqa: F401 - a real worker thread
from tenants.models import Tenant
from testing.database import committed
from testing.stripe_server import StripeStandIn
from testing.tenants import TenantFixture

WEBHOOK_URL = "/billing/stripe/webhook/"


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A Stripe-Signature header, computed as Stripe documents it."""
    moment = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{moment}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={moment},v1={digest}"


def post_webhook(payload: bytes, signature: str | None) -> Any:
    headers = {} if signature is None else {"Stripe-Signature": signature}
    client = Client(HTTP_HOST="localhost")
    return client.post(WEBHOOK_URL, payload, content_type="application/json", headers=headers)


def event_payload(event_id: str | None = None, event_type: str = "customer.created") -> bytes:
    event = {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": {"id": "cus_unknown", "object": "customer"}},
    }
    return json.dumps(event).encode()


# Signatures


def test_a_valid_signature_stores_the_event_once_and_queues_it(
    stripe: StripeStandIn, django_capture_on_commit_callbacks: Any
) -> None:
    payload = event_payload()
    with django_capture_on_commit_callbacks() as callbacks:
        response = post_webhook(payload, sign(payload, WEBHOOK_SECRET))

    assert response.status_code == 200
    assert response.json() == {"received": True, "status": "received"}
    stored = StripeEvent.objects.get(event_id=json.loads(payload)["id"])
    assert (stored.type, stored.status, stored.payload) == (
        "customer.created",
        "received",
        json.loads(payload),
    )
    assert len(callbacks) == 1


def test_the_previous_secret_still_verifies_during_a_rotation(
    stripe: StripeStandIn, django_capture_on_commit_callbacks: Any
) -> None:
    payload = event_payload()
    with django_capture_on_commit_callbacks() as callbacks:
        response = post_webhook(payload, sign(payload, OLD_WEBHOOK_SECRET))

    assert response.status_code == 200
    assert StripeEvent.objects.filter(event_id=json.loads(payload)["id"]).count() == 1
    assert len(callbacks) == 1


BAD_REQUESTS: dict[str, Callable[[bytes], tuple[bytes, str | None]]] = {
    "tampered body": lambda body: (
        body.replace(b"customer.created", b"customer.deleted"),
        sign(body, WEBHOOK_SECRET),
    ),
    "wrong secret": lambda body: (body, sign(body, "whsec_not_ours")),
    # Outside the 300 s tolerance by a margin: a timestamp ahead comes closer while
    # the request is in flight, and a loaded machine may take seconds.
    "301 s old": lambda body: (body, sign(body, WEBHOOK_SECRET, int(time.time()) - 301)),
    "330 s ahead": lambda body: (body, sign(body, WEBHOOK_SECRET, int(time.time()) + 330)),
    # The stripe library verifies the first item named exactly "t": a decoy " t=<now>" must not pass.
    "330 s ahead behind a decoy": lambda body: (
        body,
        f" t={int(time.time())}," + sign(body, WEBHOOK_SECRET, int(time.time()) + 330),
    ),
    "missing header": lambda body: (body, None),
    "header without timestamp": lambda body: (body, sign(body, WEBHOOK_SECRET).split(",", 1)[1]),
    "not JSON": lambda body: (b"{not json", sign(b"{not json", WEBHOOK_SECRET)),
    "JSON but no event": lambda body: (b"[1, 2]", sign(b"[1, 2]", WEBHOOK_SECRET)),
    "not UTF-8": lambda body: (b"\xff\xfe", sign(b"\xff\xfe", WEBHOOK_SECRET)),
    # JSON that Python reads but PostgreSQL's jsonb cannot store, correctly signed.
    "a lone surrogate": lambda body: signed(body.replace(b'"cus_unknown"', b'"cus_\\ud800"')),
    "NaN": lambda body: signed(body.replace(b'"cus_unknown"', b"NaN")),
    "Infinity": lambda body: signed(body.replace(b'"cus_unknown"', b"-Infinity")),
    "nested 100,000 deep": lambda body: signed(
        body.replace(b'"cus_unknown"', b"[" * 100_000 + b"]" * 100_000)
    ),
}


def signed(body: bytes) -> tuple[bytes, str]:
    return body, sign(body, WEBHOOK_SECRET)


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_a_request_that_fails_verification_gets_400_and_changes_nothing(
    stripe: StripeStandIn, django_capture_on_commit_callbacks: Any, case: str
) -> None:
    body, signature = BAD_REQUESTS[case](event_payload())
    before = StripeEvent.objects.count()
    with django_capture_on_commit_callbacks() as callbacks:
        response = post_webhook(body, signature)

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["message"]
    assert StripeEvent.objects.count() == before
    assert callbacks == []


def test_a_timestamp_within_the_tolerance_passes(stripe: StripeStandIn) -> None:
    for offset in (-290, 299):  # an old one ages while the request is in flight
        payload = event_payload()
        assert (
            post_webhook(payload, sign(payload, WEBHOOK_SECRET, int(time.time()) + offset)).status_code == 200
        )


def test_webhooks_are_refused_when_no_secret_is_configured(stripe: StripeStandIn, settings: Settings) -> None:
    settings.STRIPE_WEBHOOK_SECRETS = []
    payload = event_payload()
    response = post_webhook(payload, sign(payload, WEBHOOK_SECRET))

    assert response.status_code == 400
    assert StripeEvent.objects.filter(event_id=json.loads(payload)["id"]).count() == 0


def test_the_webhook_takes_only_post(stripe: StripeStandIn) -> None:
    assert Client(HTTP_HOST="localhost").get(WEBHOOK_URL).status_code == 405


# Delivery


@dataclass
class Subscribed:
    tenant: Tenant
    customer_id: str
    subscription_id: str
    events: list[bytes]  # in the order Stripe sent them
    final_plan: Plan
    period_end: int


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = False


def stripe_plan(price_id: str, amount: int) -> None:
    stripe_client().v1.plans.create(
        params={
            "id": price_id,
            "amount": amount,
            "currency": "usd",
            "interval": "month",
            "product": {"name": price_id},
        }
    )


def event_of(event_type: str, obj: dict[str, Any]) -> bytes:
    """An event as Stripe sends it, around an object snapshot."""
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "livemode": False,
        "type": event_type,
        "data": {"object": obj},
    }
    return json.dumps(event, default=str).encode()


@pytest.fixture
def subscribed(stripe: StripeStandIn, serving_tenant: TenantFixture) -> Iterator[Subscribed]:
    """serving's subscription, created on Pro and moved to Enterprise in Stripe;
    the events Stripe sent about it, not yet delivered. Committed, then undone."""
    client = stripe_client()
    suffix = uuid.uuid4().hex[:8]
    pro_price, enterprise_price = f"price_pro_{suffix}", f"price_enterprise_{suffix}"
    stripe_plan(pro_price, 4900)
    stripe_plan(enterprise_price, 49900)
    tenant = serving_tenant.tenant
    saved_plan_id = tenant.plan_id
    committed(lambda: Plan.objects.filter(slug="pro").update(stripe_price_id=pro_price))
    committed(lambda: Plan.objects.filter(slug="enterprise").update(stripe_price_id=enterprise_price))
    customer_id = customer_paying_by_card(client, tenant.name)
    committed(lambda: BillingAccount.objects.create(tenant_id=tenant.pk, stripe_customer_id=customer_id))
    subscription = client.v1.subscriptions.create(
        params={"customer": customer_id, "items": [{"plan": pro_price}]}
    )
    sent = [
        event.to_dict()
        for event in client.v1.events.list(params={"limit": 100}).data
        if event.type in ("customer.subscription.created", "invoice.payment_succeeded")
        and event.data.object.to_dict().get("customer") == customer_id
    ]
    item_id = subscription["items"].data[0].id
    client.v1.subscriptions.update(
        subscription.id,
        params={"items": [{"id": item_id, "plan": enterprise_price}]},
    )
    now = client.v1.subscriptions.retrieve(subscription.id).to_dict()
    events = [json.dumps(event, default=str).encode() for event in sent]
    events.append(event_of("customer.subscription.updated", now))
    try:
        yield Subscribed(
            tenant=tenant,
            customer_id=customer_id,
            subscription_id=subscription.id,
            events=events,
            final_plan=Plan.objects.get(slug="enterprise"),
            period_end=now["current_period_end"],
        )
    finally:
        event_ids = [json.loads(event)["id"] for event in events]

        def undo() -> None:
            StripeEvent.objects.filter(event_id__in=event_ids).delete()
            BillingAccount.objects.filter(tenant=tenant).delete()
            Tenant.objects.filter(pk=tenant.pk).update(plan_id=saved_plan_id)
            Plan.objects.filter(slug__in=["pro", "enterprise"]).update(stripe_price_id="")

        committed(undo)


def deliver(waves: list[list[bytes]]) -> None:
    """Each wave's deliveries at once, each on its own committed connection."""
    for wave in waves:
        with ThreadPoolExecutor(len(wave)) as pool:
            responses = list(
                pool.map(lambda body: committed(lambda: post_webhook(body, sign(body, WEBHOOK_SECRET))), wave)
            )
        assert [response.status_code for response in responses] == [200] * len(wave)


PATTERNS: dict[str, Callable[[list[bytes]], list[list[bytes]]]] = {
    "once, in order": lambda events: [[event] for event in events],
    "twice, concurrently": lambda events: [[event, event] for event in events],
    "five times": lambda events: [[event] for event in events for _ in range(5)],
    "out of order": lambda events: [[event] for event in reversed(events)],
    "out of order, each twice concurrently": lambda events: [[event, event] for event in reversed(events)],
}


@pytest.mark.parametrize("pattern", PATTERNS)
def test_every_delivery_pattern_ends_in_the_state_of_one_in_order_delivery(
    subscribed: Subscribed, eager_tasks: None, pattern: str
) -> None:
    deliver(PATTERNS[pattern](subscribed.events))

    account = BillingAccount.objects.get(tenant=subscribed.tenant)
    assert account.stripe_subscription_id == subscribed.subscription_id
    assert account.subscription_status == SubscriptionStatus.ACTIVE
    assert account.current_period_end is not None
    assert int(account.current_period_end.timestamp()) == subscribed.period_end
    assert Tenant.objects.get(pk=subscribed.tenant.pk).plan == subscribed.final_plan
    event_ids = [json.loads(event)["id"] for event in subscribed.events]
    stored = StripeEvent.objects.filter(event_id__in=event_ids)
    assert sorted(stored.values_list("event_id", flat=True)) == sorted(event_ids)
    assert set(stored.values_list("status", flat=True)) == {EventStatus.PROCESSED}


def test_a_canceled_subscription_puts_the_tenant_back_on_the_default_plan(
    subscribed: Subscribed, eager_tasks: None
) -> None:
    deliver([[event] for event in subscribed.events])
    canceled = stripe_client().v1.subscriptions.cancel(subscribed.subscription_id).to_dict()

    deliver([[event_of("customer.subscription.deleted", canceled)]])

    account = BillingAccount.objects.get(tenant=subscribed.tenant)
    assert account.subscription_status == SubscriptionStatus.CANCELED
    assert Tenant.objects.get(pk=subscribed.tenant.pk).plan == Plan.objects.get(is_default=True)


def test_events_about_unknown_customers_or_of_other_types_are_recorded_as_ignored(
    subscribed: Subscribed, eager_tasks: None
) -> None:
    stranger = stripe_client().v1.customers.create(params={"name": "not a tenant"})
    unknown = event_of("customer.subscription.updated", {"id": "sub_x", "customer": stranger.id})
    other_type = event_of("charge.refunded", {"id": "ch_x", "customer": subscribed.customer_id})
    subscribed.events.extend([unknown, other_type])

    deliver([[unknown], [other_type]])

    statuses = dict(
        StripeEvent.objects.filter(
            event_id__in=[json.loads(unknown)["id"], json.loads(other_type)["id"]]
        ).values_list("type", "detail")
    )
    assert statuses == {
        "customer.subscription.updated": "unknown customer",
        "charge.refunded": "charge.refunded does not concern a subscription",
    }
    assert not BillingAccount.objects.get(tenant=subscribed.tenant).stripe_subscription_id


def test_a_real_worker_processes_a_stored_event(
    subscribed: Subscribed,
    billing_worker: str,  # noqa: F811 - the fixture
) -> None:
    event = json.loads(subscribed.events[-1])
    stored = committed(
        lambda: StripeEvent.objects.create(event_id=event["id"], type=event["type"], payload=event)
    )

    result = tasks.process_stripe_event.apply_async(
        args=[stored.pk], queue=billing_worker, ignore_result=False
    )

    assert result.get(timeout=20) == "processed"
    assert (
        BillingAccount.objects.get(tenant=subscribed.tenant).stripe_subscription_id
        == subscribed.subscription_id
    )
    assert Tenant.objects.get(pk=subscribed.tenant.pk).plan == subscribed.final_plan


def test_an_event_that_needs_stripe_fails_clearly_when_stripe_is_not_configured(
    subscribed: Subscribed, eager_tasks: None, settings: Settings
) -> None:
    settings.STRIPE_SECRET_KEY = ""
    body = subscribed.events[-1]

    deliver([[body]])

    stored = StripeEvent.objects.get(event_id=json.loads(body)["id"])
    assert stored.status == EventStatus.FAILED
    assert "not configured" in stored.detail
    assert not BillingAccount.objects.get(tenant=subscribed.tenant).stripe_subscription_id


def test_events_still_unapplied_after_a_while_are_queued_again(
    monkeypatch: pytest.MonkeyPatch, db: None
) -> None:
    """Stripe had its 200 and will not resend: a lost task must not lose the event."""
    long_ago = timezone.now() - timedelta(minutes=30)

    def stored(status: EventStatus, received_at: datetime) -> int:
        event_id = f"evt_{uuid.uuid4().hex}"
        payload = json.loads(event_payload(event_id))
        return StripeEvent.objects.create(
            event_id=event_id, type=payload["type"], payload=payload, status=status, received_at=received_at
        ).pk

    lost, failed = stored(EventStatus.RECEIVED, long_ago), stored(EventStatus.FAILED, long_ago)
    stored(EventStatus.RECEIVED, timezone.now())  # its task may still be on its way
    stored(EventStatus.PROCESSED, long_ago)
    stored(EventStatus.RECEIVED, timezone.now() - timedelta(days=40))  # beyond Stripe's retention
    queued: list[int] = []
    monkeypatch.setattr(tasks.process_stripe_event, "delay", queued.append)

    assert tasks.retry_stripe_events() == 2
    assert queued == [lost, failed] or queued == [failed, lost]


def test_an_event_naming_another_tenants_subscription_changes_neither_tenant(
    subscribed: Subscribed,
    eager_tasks: None,
    tenant: TenantFixture,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """Signed by Stripe, about this tenant's customer, but naming serving's subscription
    (Stripe never sends it; a bug of ours or a mix-up of accounts must not move plans)."""
    deliver([[event] for event in subscribed.events])
    own_customer = stripe_client().v1.customers.create(params={"name": "tenant"}).id
    BillingAccount.objects.create(tenant=tenant.tenant, stripe_customer_id=own_customer)
    plan_before = tenant.tenant.plan
    mixed = event_of(
        "customer.subscription.updated", {"id": subscribed.subscription_id, "customer": own_customer}
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert post_webhook(mixed, sign(mixed, WEBHOOK_SECRET)).status_code == 200

    stored = StripeEvent.objects.get(event_id=json.loads(mixed)["id"])
    assert (stored.status, stored.detail) == (
        EventStatus.IGNORED,
        "the subscription belongs to another customer",
    )
    account = BillingAccount.objects.get(tenant=tenant.tenant)
    assert (account.stripe_subscription_id, account.subscription_status) == ("", SubscriptionStatus.NONE)
    assert Tenant.objects.get(pk=tenant.tenant.pk).plan == plan_before
    theirs = BillingAccount.objects.get(tenant=subscribed.tenant)
    assert theirs.stripe_subscription_id == subscribed.subscription_id
    assert Tenant.objects.get(pk=subscribed.tenant.pk).plan == subscribed.final_plan


def test_events_of_a_deactivated_tenant_are_still_applied_and_leave_it_deactivated(
    subscribed: Subscribed, eager_tasks: None
) -> None:
    """Its subscription still bills in Stripe until someone cancels it: the mirror keeps
    following it, and nothing of billing turns the workspace back on."""
    committed(lambda: Tenant.objects.filter(pk=subscribed.tenant.pk).update(is_active=False))
    try:
        deliver([[event] for event in subscribed.events])

        tenant = committed(lambda: Tenant.objects.select_related("plan").get(pk=subscribed.tenant.pk))
        assert (tenant.is_active, tenant.plan) == (False, subscribed.final_plan)
        event_ids = [json.loads(event)["id"] for event in subscribed.events]
        statuses = committed(
            lambda: set(StripeEvent.objects.filter(event_id__in=event_ids).values_list("status", flat=True))
        )
        assert statuses == {EventStatus.PROCESSED}
    finally:
        committed(lambda: Tenant.objects.filter(pk=subscribed.tenant.pk).update(is_active=True))
