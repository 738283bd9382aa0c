"""API keys known to be wrong, remembered so that repeating one costs no query.

A flood of requests with one well-formed but wrong key used to cost a database
query (and under ASGI a connection) per request. Each process now remembers,
for REJECTED_API_KEY_SECONDS and at most REJECTED_API_KEY_ENTRIES at a time:

- a prefix no row has, by prefix. Creating a key
  forgets its prefix in this process at once (tenants.services.create_api_key)
  and, once committed, publishes it (tenants/gateway_cache.py), on which every
  gateway process forgets it too; prefixes are 12 random characters, so only
  someone who guessed a new key's prefix beforehand could meet a stale entry,
  and only until it expires;
- a full key whose secret does not match, or whose key is revoked or expired,
  by a digest of the key: such a key never becomes valid (secrets are never
  reissued under a prefix, revocation and expiry are final).

A key of an inactive tenant is refused but not remembered: staff may
reactivate the tenant.

Thread-safe: /api requests run in threads, the gateway in an event loop.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict

from django.conf import settings

from tenants.models import ApiKey
from tenants.selectors import API_KEY_PATTERN, accepts_secret, api_key_with_prefix


def key_digest(raw_key: str) -> str:
    return "key:" + hashlib.sha256(raw_key.encode()).hexdigest()


def prefix_entry(prefix: str) -> str:
    return "prefix:" + prefix


class RejectedApiKeys:
    """A bounded, expiring set of rejected prefixes and keys (oldest dropped first)."""

    def __init__(self, max_entries: int, ttl_seconds: float) -> None:
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self._expiries: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def is_rejected(self, prefix: str, raw_key: str) -> bool:
        return self._contains(prefix_entry(prefix)) or self._contains(key_digest(raw_key))

    def reject_prefix(self, prefix: str) -> None:
        self._add(prefix_entry(prefix))

    def reject_key(self, raw_key: str) -> None:
        self._add(key_digest(raw_key))

    def forget_prefix(self, prefix: str) -> None:
        with self._lock:
            self._expiries.pop(prefix_entry(prefix), None)

    def clear(self) -> None:
        with self._lock:
            self._expiries.clear()

    def __len__(self) -> int:
        return len(self._expiries)

    def _contains(self, entry: str) -> bool:
        with self._lock:
            expiry = self._expiries.get(entry)
            if expiry is None:
                return False
            if expiry > time.monotonic():
                return True
            del self._expiries[entry]
            return False

    def _add(self, entry: str) -> None:
        with self._lock:
            self._expiries.pop(entry, None)
            self._expiries[entry] = time.monotonic() + self.ttl_seconds
            while len(self._expiries) > self.max_entries:
                self._expiries.popitem(last=False)


# The process's one set: /api and /v1 served by one process share it.
rejected_api_keys = RejectedApiKeys(
    max_entries=settings.REJECTED_API_KEY_ENTRIES, ttl_seconds=settings.REJECTED_API_KEY_SECONDS
)


# Key lookups that may reach the database at once in this process (/api threads).
_lookup_slots = threading.BoundedSemaphore(settings.API_KEY_LOOKUP_CONCURRENCY)


def find_usable_api_key_remembering(
    raw_key: str, rejected: RejectedApiKeys = rejected_api_keys
) -> ApiKey | None:
    """The usable key for `raw_key`, or None, as tenants.selectors.find_usable_api_key.

    A rejection is remembered in `rejected` and a remembered one costs no query.
    At most API_KEY_LOOKUP_CONCURRENCY lookups run at once; a caller that waited
    looks again first, so a burst of one wrong key makes few queries, not one each.
    """
    raw_key = raw_key.strip()
    match = API_KEY_PATTERN.fullmatch(raw_key)
    if match is None or rejected.is_rejected(match["prefix"], raw_key):
        return None
    with _lookup_slots:
        if rejected.is_rejected(match["prefix"], raw_key):
            return None
        api_key = api_key_with_prefix(match["prefix"])
    if api_key is None:
        rejected.reject_prefix(match["prefix"])
        return None
    if not accepts_secret(api_key, match["secret"]):
        rejected.reject_key(raw_key)
        return None
    # Not remembered: staff may reactivate a tenant.
    return api_key if api_key.tenant.is_active else None
