"""The usage ledger's monthly partitions: created ahead, dropped past retention.

billing_usageevent is partitioned by range of `created_at`, one partition per
UTC month (`billing_usageevent_pYYYYMM`), plus a default partition that takes
any row no month partition holds, so an insert never fails for want of one.
`maintain_ledger_partitions` (beat, every six hours; `manage.py
ledger_partitions`) keeps it so:

- the current month and LEDGER_PARTITIONS_AHEAD months after it have their
  partition. One is created empty, then attached (ATTACH takes a lock that
  lets the flusher keep inserting); rows that had fallen into the default
  partition for that month move into it in the same transaction;
- a month that ended LEDGER_RETENTION_MONTHS whole months ago or earlier is
  detached and dropped (a metadata change, instead of a DELETE of millions
  of rows), and the default partition's rows that old are deleted;
- request ids claimed more than LEDGER_DEDUPE_DAYS ago are forgotten.

Locks wait at most LOCK_TIMEOUT: a maintenance run that cannot have them soon
fails and the next one tries again, rather than queue the flusher behind it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context

from billing.models import UsageRequestId

LEDGER = "billing_usageevent"
DEFAULT_PARTITION = "billing_usageevent_default"
MONTHLY = re.compile(r"billing_usageevent_p(\d{4})(\d{2})")
LOCK_TIMEOUT = "5s"


@dataclass
class Maintenance:
    created: list[str] = field(default_factory=list)
    moved_rows: int = 0  # from the default partition into a created one
    dropped: list[str] = field(default_factory=list)
    deleted_rows: int = 0  # past retention, from the default partition
    forgotten_request_ids: int = 0


def maintain_ledger_partitions(now: datetime | None = None) -> Maintenance:
    """Create the partitions ahead, drop those past retention, forget old request ids."""
    now = now or timezone.now()
    this_month = month_of(now)
    maintenance = Maintenance()
    with schema_context(get_public_schema_name()):
        for month in months(this_month, settings.LEDGER_PARTITIONS_AHEAD + 1):
            create_partition(month, maintenance)
        drop_partitions_before(add_months(this_month, -settings.LEDGER_RETENTION_MONTHS), maintenance)
        cutoff = now - timedelta(days=settings.LEDGER_DEDUPE_DAYS)
        maintenance.forgotten_request_ids = UsageRequestId.objects.filter(recorded_at__lt=cutoff).delete()[0]
    return maintenance


def create_partition(month: date, maintenance: Maintenance) -> None:
    name = partition_name(month)
    start, end = bounds(month)
    with transaction.atomic(), connection.cursor() as cursor:
        serialize(cursor)
        if name in monthly_partitions():
            return
        cursor.execute(f"CREATE TABLE {name} (LIKE {LEDGER} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        cursor.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE created_at >= %s AND created_at < %s"  # noqa: S608 - our names
            f" RETURNING *) INSERT INTO {name} SELECT * FROM moved",
            [start, end],
        )
        maintenance.moved_rows += cursor.rowcount
        # DDL takes no parameters; the bounds are datetimes built from integers.
        bound = f"FOR VALUES FROM ('{start}') TO ('{end}')"
        cursor.execute(f"ALTER TABLE {LEDGER} ATTACH PARTITION {name} {bound}")
    maintenance.created.append(name)


def drop_partitions_before(cutoff: date, maintenance: Maintenance) -> None:
    """Drop every month partition that ends on or before `cutoff` (the first of a month)."""
    for name, month in sorted(monthly_partitions().items()):
        if add_months(month, 1) <= cutoff:
            with transaction.atomic(), connection.cursor() as cursor:
                serialize(cursor)
                cursor.execute(f"ALTER TABLE {LEDGER} DETACH PARTITION {name}")
                cursor.execute(f"DROP TABLE {name}")
            maintenance.dropped.append(name)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {DEFAULT_PARTITION} WHERE created_at < %s", [bounds(cutoff)[0]])  # noqa: S608 - our name
        maintenance.deleted_rows = cursor.rowcount


def serialize(cursor: CursorWrapper) -> None:
    """One maintenance transaction at a time, waiting at most LOCK_TIMEOUT for the ledger."""
    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{LEDGER} partitions"])
    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")


def monthly_partitions() -> dict[str, date]:
    """The ledger's month partitions, by name."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT child.relname FROM pg_inherits JOIN pg_class child ON child.oid = pg_inherits.inhrelid"
            " WHERE pg_inherits.inhparent = %s::regclass",
            [LEDGER],
        )
        names = [name for (name,) in cursor.fetchall()]
    matches = [match for name in names if (match := MONTHLY.fullmatch(name))]
    return {match[0]: date(int(match[1]), int(match[2]), 1) for match in matches}


def partition_name(month: date) -> str:
    return f"{LEDGER}_p{month:%Y%m}"


def bounds(month: date) -> tuple[datetime, datetime]:
    """The month's partition bounds: [its first instant, the next month's), in UTC."""
    following = add_months(month, 1)
    return (
        datetime(month.year, month.month, 1, tzinfo=UTC),
        datetime(following.year, following.month, 1, tzinfo=UTC),
    )


def month_of(moment: datetime) -> date:
    utc = moment.astimezone(UTC)
    return date(utc.year, utc.month, 1)


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def months(first: date, count: int) -> list[date]:
    return [add_months(first, offset) for offset in range(count)]
