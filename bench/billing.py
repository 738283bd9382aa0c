"""Billing's two Stripe paths, measured against the local Stripe stand-in:

- webhook verification: `billing.webhooks.verify_event` on signed events (HMAC
  against the rotation's two secrets, timestamp, JSON and shape checks), per
  event, with the library's own `stripe.Webhook.construct_event` as baseline;
- meter events: one pusher's sends through the real stripe library to the
  stand-in over HTTP (what bounds a pusher's rows per second when Stripe is
  fast), sequential, with the stand-in's bare HTTP round trip as baseline.

    python bench/billing.py [--events 2000] [--meter-events 500] [--json PATH]

Needs the Django settings (the launcher sets DATABASE_URL, REDIS_URL,
SECRET_KEY); touches neither database nor Redis.
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
from pathlib import Path

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
    }


def bench_meter_events(count: int) -> dict[str, float]:
    import requests
    from django.conf import settings

    from billing.stripe_api import stripe_client
    from testing.stripe_server import serving_stripe

    with serving_stripe() as server:
        settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE = "sk_test_bench", server.url
        client = stripe_client()
        identifiers = iter(range(count))
        payload = {"stripe_customer_id": "cus_bench", "value": "42"}

        def send() -> object:
            identifier = str(next(identifiers))
            params = {"event_name": "bench", "identifier": identifier, "payload": payload}
            return client.v1.billing.meter_events.create(params=params)  # type: ignore[arg-type]

        library_us = timed(send, count)
        session = requests.Session()
        bare_us = timed(lambda: session.get(f"{server.url}/js.stripe.com/v3/", timeout=5), count)
        assert len(server.meter_events) == count
    return {
        "meter_event_median_us": statistics.median(library_us),
        "bare_round_trip_median_us": statistics.median(bare_us),
        "meter_events_per_second": count / (sum(library_us) / 1e6),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--meter-events", type=int, default=500)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON_PATH)
    args = parser.parse_args()
    setup_django()
    import logging

    logging.getLogger("stripe").setLevel(logging.WARNING)
    results = {**bench_verification(args.events), **bench_meter_events(args.meter_events)}
    for name, value in results.items():
        print(f"{name:32} {value:12.1f}")
    ratio = results["verify_event_median_us"] / results["library_median_us"]
    print(f"{'verify_event / library':32} {ratio:12.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
