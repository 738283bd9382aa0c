"""Billing tests talk to Stripe through the real stripe library, against the
local stand-in (testing/stripe_server.py), served once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_django import Settings

from testing.stripe_server import StripeStandIn, serving_stripe

WEBHOOK_SECRET = "whsec_test_current"
OLD_WEBHOOK_SECRET = "whsec_test_previous"


@pytest.fixture(scope="session")
def stripe_server() -> Iterator[StripeStandIn]:
    with serving_stripe() as server:
        yield server


@pytest.fixture
def stripe(stripe_server: StripeStandIn, db: None, settings: Settings) -> StripeStandIn:
    """Stripe configured against the stand-in, with two webhook secrets (a rotation)."""
    settings.STRIPE_SECRET_KEY = "sk_test_standin"
    settings.STRIPE_API_BASE = stripe_server.url
    settings.STRIPE_WEBHOOK_SECRETS = [WEBHOOK_SECRET, OLD_WEBHOOK_SECRET]
    stripe_server.meter_events.clear()
    stripe_server.duplicate_meter_events = 0
    stripe_server.rate_limited_calls = 0
    stripe_server.on_meter_event = None
    stripe_server.subscription_updates.clear()
    stripe_server.idempotent_answers.clear()
    stripe_server.on_subscription_update = None
    return stripe_server
