"""Billing's two Stripe paths, measured against the local Stripe stand-in:

- webhook verification: `billing.webhooks.verify_event` on signed events (HMAC
  against the rotation's two secrets, timestamp, JSON and shape checks), per
  event, with the library's own `stripe.Webhook.construct_event` as baseline;
- meter pushes: ledger rows per second read, sent to the stand-in through the
  real stripe library and marked, by `billing.metering.push_meter_events` (v2
  meter event stream, docs/decisions/0014), with the one-at-a-time v1 pusher
  it replaced as baseline, round by round in the same run; `--latency-ms`
  makes the stand-in answer each meter call that much later, as Stripe's round
  trip would.

    python bench/billing.py [--events 2000] [--rows 5000] [--baseline-rows 500] [--rounds 3]
        [--latency-ms 0] [--json PATH]

Needs the launcher's PostgreSQL and Redis (DATABASE_URL, REDIS_URL, SECRET_KEY):
it runs `manage.py bootstrap`, adds a bench tenant row (no schema) with ledger
rows, and deletes them at the end. No Celery worker may be pushing meanwhile.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON_PATH = REPO_ROOT / "bench" / "results" / "billing.json"
SECRETS = ["whsec_bench_current", "whsec_bench_previous"]


def setup_django() -> None:
    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiaas.settings")
    import django

    django.setup()


def signed_event(secret: str) -> tuple[bytes, str]:
    body = json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "object": "event",
            "type": "customer.subscription.updated",
            "created": int(time.time()),
            "data": {"object": {"id": "sub_bench", "object": "subscription", "customer": "cus_bench"}},
        }
    ).encode()
    moment = int(time.time())
    digest = hmac.new(secret.encode(), f"{moment}.".encode() + body, hashlib.sha256).hexdigest()
    return body, f"t={moment},v1={digest}"


def timed(call: object, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def bench_verification(count: int) -> dict[str, float]:
    import stripe
    from django.conf import settings

    from billing.webhooks import verify_event

    settings.STRIPE_WEBHOOK_SECRETS = SECRETS
    # Signed with the second secret: the rotation's worst case, both are tried.
    events = [signed_event(SECRETS[1]) for _ in range(count)]
    ours = iter(events)
    library = iter(events)
    ours_us = timed(lambda: verify_event(*next(ours)), count)
    library_us = timed(lambda: stripe.Webhook.construct_event(*next(library), SECRETS[1]), count)
    return {
        "verify_event_median_us": statistics.median(ours_us),
        "library_median_us": statistics.median(library_us),
        "ratio_of_medians": statistics.median(ours_us) / statistics.median(library_us),
    }


def bench_meter_push(rows: int, baseline_rows: int, rounds: int, latency_ms: float) -> dict[str, Any]:
    """Ledger rows to Stripe per second (read, sent and marked): the stream pusher
    (billing.metering) against the one-at-a-time pusher it replaced, interleaved."""
    from django.conf import settings
    from django.core.management import call_command

    from billing.stripe_api import stripe_client
    from testing.stripe_server import serving_stripe

    call_command("bootstrap", verbosity=0)
    stream_rates: list[float] = []
    baseline_rates: list[float] = []
    with serving_stripe() as server:
        settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE = "sk_test_bench", server.url
        server.latency_seconds = latency_ms / 1000
        settings.STRIPE_METER_EVENTS_API_BASE = server.meter_events_url
        settings.STRIPE_METER_IDENTIFIER_PREFIX = f"bench-{uuid.uuid4().hex[:8]}"
        customer = stripe_client().v1.customers.create(params={"name": "bench"}).id
        tenant = bench_tenant(customer)
        try:
            for _ in range(rounds):
                baseline_rates.append(timed_push(tenant, baseline_rows, push_one_at_a_time))
                stream_rates.append(timed_push(tenant, rows, push_by_stream))
            assert server.duplicate_meter_events == 0
            assert len(server.meter_events) == rounds * (rows + baseline_rows)
        finally:
            forget_bench_tenant(tenant)
    return {
        "rows_per_round": rows,
        "added_latency_ms": latency_ms,
        "baseline_rows_per_round": baseline_rows,
        "concurrency": settings.STRIPE_METER_PUSH_CONCURRENCY,
        "stream_rows_per_second": stream_rates,
        "one_at_a_time_rows_per_second": baseline_rates,
        "stream_median_rows_per_second": statistics.median(stream_rates),
        "one_at_a_time_median_rows_per_second": statistics.median(baseline_rates),
        "ratio_of_medians": statistics.median(stream_rates) / statistics.median(baseline_rates),
    }


def bench_tenant(customer: str) -> Any:
    """A tenant row (no schema: the ledger is public) subscribed under `customer`."""
    from django.utils import timezone

    from billing.models import BillingAccount, SubscriptionStatus
    from tenants.models import Tenant

    slug = f"bench-meter-{uuid.uuid4().hex[:8]}"
    tenant = Tenant(schema_name=slug.replace("-", "_"), slug=slug, name="bench meter")
    tenant.auto_create_schema = False
    tenant.save()
    started = timezone.now() - timedelta(hours=1)
    BillingAccount.objects.create(
        tenant=tenant,
        stripe_customer_id=customer,
        subscription_status=SubscriptionStatus.ACTIVE,
        current_period_start=started,
        current_period_end=started + timedelta(days=30),
        subscription_created_at=started,
    )
    return tenant


def forget_bench_tenant(tenant: Any) -> None:
    from billing.models import BillingAccount, UsageEvent

    UsageEvent.objects.filter(tenant=tenant).delete()
    BillingAccount.objects.filter(tenant=tenant).delete()
    tenant.delete()


def timed_push(tenant: Any, count: int, push: Callable[[], int]) -> float:
    """Rows per second for `push` (called until it reports nothing) to report `count` new rows."""
    from django.utils import timezone

    from billing.models import UsageEvent

    served_at = timezone.now() - timedelta(minutes=5)
    UsageEvent.objects.bulk_create(
        UsageEvent(
            request_id=f"req_{uuid.uuid4().hex}",
            tenant=tenant,
            model="sim-small",
            status=200,
            prompt_tokens=40 + n % 7,
            completion_tokens=10,
            created_at=served_at,
        )
        for n in range(count)
    )
    started = time.perf_counter()
    reported = 0
    while reported < count:
        done = push()
        if done == 0:
            raise RuntimeError(
                "the pusher reported nothing: is another pusher running, or Stripe backing off?"
            )
        reported += done
    return count / (time.perf_counter() - started)


def push_by_stream() -> int:
    from billing import metering

    result = metering.push_meter_events(batch_size=1000)
    return result.reported


def push_one_at_a_time() -> int:
    """The pusher before docs/decisions/0014: one v1 meter event and one mark per row."""
    from django.conf import settings
    from django.utils import timezone

    from billing import metering
    from billing.models import UsageEvent
    from billing.stripe_api import stripe_client

    client = stripe_client()
    reported = 0
    for row in metering.pending_rows(200):
        identifier = metering.meter_identifier(row.pk)
        client.v1.billing.meter_events.create(
            params={
                "event_name": settings.STRIPE_METER_EVENT_NAME,
                "identifier": identifier,
                "timestamp": int(row.served_at.timestamp()),
                "payload": {"stripe_customer_id": row.customer, "value": str(row.tokens)},
            },
            options={"idempotency_key": f"meter-event-{identifier}"},
        )
        UsageEvent.objects.filter(pk=row.pk, meter_reported_at__isnull=True).update(
            meter_reported_at=timezone.now()
        )
        reported += 1
    return reported


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000, help="signed webhook events to verify")
    parser.add_argument("--rows", type=int, default=5000, help="ledger rows per round, stream pusher")
    parser.add_argument("--baseline-rows", type=int, default=500, help="ledger rows per round, one at a time")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="added by the stand-in to each meter call (Stripe's round trip)",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON_PATH)
    args = parser.parse_args()
    setup_django()
    import logging

    logging.getLogger("stripe").setLevel(logging.WARNING)
    verification = bench_verification(args.events)
    push = bench_meter_push(args.rows, args.baseline_rows, args.rounds, args.latency_ms)
    print_table(verification, push)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"verification": verification, "meter_push": push}, indent=2) + "\n")


def print_table(verification: dict[str, float], push: dict[str, Any]) -> None:
    ratio = verification["ratio_of_medians"]
    print(f"{'webhook verification, median µs':44} {'ours':>10} {'library':>10} {'ratio':>8}")
    print(
        f"{'verify_event / construct_event':44} {verification['verify_event_median_us']:10.1f}"
        f" {verification['library_median_us']:10.1f} {ratio:8.2f}"
    )
    print()
    rounds = " ".join(f"{rate:8.0f}" for rate in push["one_at_a_time_rows_per_second"])
    title = f"meter push, rows/s, +{push['added_latency_ms']:g} ms a call"
    print(f"{title:44} {'median':>10}   rounds")
    print(
        f"{'one at a time (v1, before)':44} {push['one_at_a_time_median_rows_per_second']:10.0f}   {rounds}"
    )
    rounds = " ".join(f"{rate:8.0f}" for rate in push["stream_rows_per_second"])
    label = f"v2 stream, 100/request, {push['concurrency']} in flight"
    print(f"{label:44} {push['stream_median_rows_per_second']:10.0f}   {rounds}")
    print(f"{'ratio of medians, stream / one at a time':44} {push['ratio_of_medians']:10.1f}x")


if __name__ == "__main__":
    main()
