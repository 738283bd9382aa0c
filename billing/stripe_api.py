"""The one way this project talks to Stripe: the official library, on the API
version pinned here, against STRIPE_API_BASE (tests point it at local servers)."""

from __future__ import annotations

import stripe
from django.conf import settings

# Every request says which API version it was written for; upgrading is a
# change of this line and a read of Stripe's changelog, never a surprise.
STRIPE_API_VERSION = "2026-10-28.endive"
# Connect and read timeout of each call; retries are ours (webhook tasks and
# the meter pusher back off, honouring Retry-After), not the library's.
TIMEOUT_SECONDS = 10.0


class StripeNotConfiguredError(RuntimeError):
    """STRIPE_SECRET_KEY is empty: billing runs offline."""


def stripe_configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def stripe_client() -> stripe.StripeClient:
    """A client for one unit of work. Raises StripeNotConfiguredError offline."""
    if not stripe_configured():
        raise StripeNotConfiguredError("Stripe is not configured (STRIPE_SECRET_KEY is empty).")
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        stripe_version=STRIPE_API_VERSION,
        base_addresses={
            "api": settings.STRIPE_API_BASE,
            "meter_events": settings.STRIPE_METER_EVENTS_API_BASE,
        },
        max_network_retries=0,
        http_client=stripe.new_default_http_client(timeout=TIMEOUT_SECONDS),
    )
