"""Throttles for the unauthenticated pages: sign-in, password reset, signup.

Each throttle counts attempts in a fixed window in Redis. Its key names the
throttle, the scope it counts in (a tenant, by id, or the public site for
signup) and a digest of the subject (an email or an address), so one tenant's
attempts never count against another's and no address is stored in clear.
A Redis error counts as exhausted: these pages fail closed.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import redis
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from tenants.models import Tenant

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Throttle:
    """At most the setting `limit_setting` attempts per `window_seconds`."""

    name: str
    limit_setting: str
    window_seconds_setting: str

    @property
    def limit(self) -> int:
        limit: int = getattr(settings, self.limit_setting)
        return limit

    @property
    def window_seconds(self) -> int:
        window: int = getattr(settings, self.window_seconds_setting)
        return window

    def key(self, scope: str, subject: str) -> str:
        digest = hashlib.sha256(subject.strip().lower().encode()).hexdigest()[:32]
        return f"throttle:{self.name}:{scope}:{digest}"

    def is_exhausted(self, scope: str, subject: str) -> bool:
        """Whether `subject` used up its attempts in `scope` (without counting one)."""
        try:
            count = cache.get(self.key(scope, subject), 0)
        except redis.RedisError as error:
            logger.warning("throttle %s unavailable: %s", self.name, error)
            return True
        return int(count) >= self.limit

    def hit(self, scope: str, subject: str) -> bool:
        """Count one attempt; whether it was within the limit."""
        key = self.key(scope, subject)
        try:
            cache.add(key, 0, timeout=self.window_seconds)  # starts the window
            count = cache.incr(key)
        except ValueError:  # the window ended between the two calls
            return self.hit(scope, subject)
        except redis.RedisError as error:
            logger.warning("throttle %s unavailable: %s", self.name, error)
            return False
        return count <= self.limit

    def reset(self, scope: str, subject: str) -> None:
        try:
            cache.delete(self.key(scope, subject))
        except redis.RedisError as error:
            logger.warning("throttle %s unavailable: %s", self.name, error)


HOUR = "THROTTLE_HOUR_SECONDS"
LOGIN_FAILURES_PER_USER = Throttle("login-user", "LOGIN_FAILURES_PER_USER", "LOGIN_FAILURE_WINDOW_SECONDS")
LOGIN_FAILURES_PER_IP = Throttle("login-ip", "LOGIN_FAILURES_PER_IP", "LOGIN_FAILURE_WINDOW_SECONDS")
PASSWORD_RESETS_PER_EMAIL = Throttle("reset-email", "PASSWORD_RESETS_PER_EMAIL_PER_HOUR", HOUR)
PASSWORD_RESETS_PER_IP = Throttle("reset-ip", "PASSWORD_RESETS_PER_IP_PER_HOUR", HOUR)
SIGNUPS_PER_IP = Throttle("signup-ip", "SIGNUPS_PER_IP_PER_HOUR", HOUR)
SIGNUPS = Throttle("signup", "SIGNUPS_PER_HOUR", HOUR)
VERIFICATION_EMAILS_PER_TENANT = Throttle("verification-email", "VERIFICATION_EMAILS_PER_HOUR", HOUR)


# The Django admin's sign-ins (staff, on the public host) count apart from every tenant's.
STAFF_SCOPE = "staff"


def tenant_scope(tenant: Tenant) -> str:
    """A tenant's throttles count under its id (ids start at random in each test run)."""
    return f"tenant-{tenant.pk}"


def client_address(request: HttpRequest) -> str:
    """The peer's address; behind a proxy, the forwarded client's, taken only from
    TRUSTED_PROXIES (aiaas/proxies.py), never from what a client claims."""
    return str(request.META.get("REMOTE_ADDR") or "unknown")
