"""Sweeping every tenant's schema: what the stalled-work sweepers of ingestion,
batches and evals share.

Each app's sweeper decides, in one schema, what is stalled and what to do about
it (`sweep_schema(moment)`); this runs it in every tenant's schema. A schema
that cannot be read (a tenant being provisioned or dropped) is logged and
skipped, so one broken schema never stops the sweep of the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from django.db import ProgrammingError
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context

from tenants.models import Tenant

logger = logging.getLogger(__name__)


def sweep_every_schema(sweep_schema: Callable[[datetime], int], now: datetime | None = None) -> int:
    """`sweep_schema(moment)` in each tenant's schema; the sum of what it returned."""
    moment = now or timezone.now()
    with schema_context(get_public_schema_name()):
        schemas = list(
            Tenant.objects.exclude(schema_name=get_public_schema_name()).values_list("schema_name", flat=True)
        )
    swept = 0
    for schema in schemas:
        try:
            with schema_context(schema):
                swept += sweep_schema(moment)
        except ProgrammingError:
            logger.exception("%s: cannot sweep the schema %s", sweep_schema.__module__, schema)
    return swept


def heartbeat_stopped(statuses: Iterable[str], stale_seconds: float, moment: datetime) -> Q:
    """Work in one of `statuses` whose heartbeat (`heartbeat_at`, or `created_at` before
    the first) is older than `stale_seconds`."""
    cutoff = moment - timedelta(seconds=stale_seconds)
    return Q(status__in=list(statuses)) & (
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff)
    )
