"""The one way this project talks to Stripe: the official library, on the API
version pinned here, against STRIPE_API_BASE (tests point it at local servers)."""

from __future__ import annotations

import hashlib
import logging
from enum import StrEnum

import stripe
from django.conf import settings
from django.core.cache import cache

# Every request says which API version it was written for; upgrading is a
# change of this line and a read of Stripe's changelog, never a surprise.
STRIPE_API_VERSION = "2026-10-28.endive"
# Connect and read timeout of each call; retries are ours (webhook tasks and
# the meter pusher back off, honouring Retry-After), not the library's.
TIMEOUT_SECONDS = 10.0
# The billing page asks whether Stripe answers: at most this long, at most once
# per STRIPE_HEALTH_CACHE_SECONDS for the whole platform.
HEALTH_TIMEOUT_SECONDS = 2.0
STRIPE_HEALTH_CACHE_SECONDS = 30
STRIPE_HEALTH_CACHE_KEY = "billing:stripe-health"
logger = logging.getLogger(__name__)


class StripeNotConfiguredError(RuntimeError):
    """STRIPE_SECRET_KEY is empty: billing runs offline."""


def stripe_configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def stripe_client(timeout: float = TIMEOUT_SECONDS) -> stripe.StripeClient:
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
        http_client=stripe.new_default_http_client(timeout=timeout),
    )


class StripeHealth(StrEnum):
    NOT_CONFIGURED = "not_configured"
    REACHABLE = "reachable"
    UNREACHABLE = "unreachable"  # no answer within HEALTH_TIMEOUT_SECONDS, or a 5xx
    KEY_REFUSED = "key_refused"  # Stripe answers but refuses STRIPE_SECRET_KEY


def stripe_health() -> StripeHealth:
    """Whether Stripe answers this platform now: one bounded call (a one-customer
    list), its verdict cached for STRIPE_HEALTH_CACHE_SECONDS, so a page that
    asks costs at most HEALTH_TIMEOUT_SECONDS and Stripe sees one call per window."""
    if not stripe_configured():
        return StripeHealth.NOT_CONFIGURED
    # Per Stripe address and key: a changed setting is checked afresh.
    configured = f"{settings.STRIPE_API_BASE} {settings.STRIPE_SECRET_KEY}".encode()
    key = f"{STRIPE_HEALTH_CACHE_KEY}:{hashlib.sha256(configured).hexdigest()[:16]}"
    cached = cache.get(key)
    if cached is not None:
        return StripeHealth(cached)
    health = probe_stripe()
    cache.set(key, health.value, STRIPE_HEALTH_CACHE_SECONDS)
    return health


def probe_stripe() -> StripeHealth:
    try:
        stripe_client(HEALTH_TIMEOUT_SECONDS).v1.customers.list({"limit": 1})
    except stripe.AuthenticationError:
        return StripeHealth.KEY_REFUSED
    except stripe.APIConnectionError as error:
        logger.warning("Stripe did not answer the health check: %s", error)
        return StripeHealth.UNREACHABLE
    except stripe.StripeError as error:
        if (error.http_status or 500) >= 500:
            logger.warning("Stripe answered the health check with %s", error.http_status)
            return StripeHealth.UNREACHABLE
    return StripeHealth.REACHABLE
