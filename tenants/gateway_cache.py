"""Telling every gateway process to drop what it cached of some API keys.

The gateway caches a resolved key with its tenant, the tenant's plan and its
billing account (gateway/auth.py), and evicts a key when its prefix is
published on API_KEY_CHANGED_CHANNEL. The models announce every ORM write of
a key or a tenant once it commits (tenants/models.py: save, delete, and a
queryset's update, bulk_update and delete), so no caller (a service, the
admin, an admin action, a shell) can forget; raw SQL is the one way around it.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from aiaas.redis_clients import sync_client

# The name is older than its use for every change: kept, so gateways of the
# previous release still hear it during a rolling deploy.
API_KEY_CHANGED_CHANNEL = "api-key-revoked"


def publish_key_changes(prefixes: Iterable[str]) -> None:
    """Tell every gateway process now to drop its copy of each key in `prefixes`
    (a copy of the key, or that the prefix was unknown)."""
    pending = list(prefixes)
    if not pending:
        return
    with sync_client("control").pipeline(transaction=False) as pipeline:
        for prefix in pending:
            pipeline.publish(API_KEY_CHANGED_CHANNEL, prefix)
        pipeline.execute()


def forget_keys_after_commit(prefixes: Iterable[str]) -> None:
    """publish_key_changes once the current transaction commits (at once outside
    one): announced earlier, a gateway could reload the old row."""
    pending = list(prefixes)
    if pending:
        transaction.on_commit(lambda: publish_key_changes(pending), robust=True)
