"""The usage ledger partitioned by month: where rows land, partitions created
ahead and dropped past retention, and a request id stored once across months."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from pytest_django import Settings

from billing.models import UsageEvent, UsageRequestId
from billing.partitions import maintain_ledger_partitions, monthly_partitions
from billing.tests.test_usage_ledger import usage_record
from billing.usage import insert
from testing.tenants import TenantFixture

pytestmark = pytest.mark.django_db

FAR = datetime(2031, 1, 15, 12, tzinfo=UTC)  # months no other test writes in


def partition_of(request_id: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM billing_usageevent WHERE request_id = %s", [request_id]
        )
        return str(cursor.fetchone()[0])


def test_a_row_of_this_month_lands_in_its_partition(tenant: TenantFixture) -> None:
    now = timezone.now()
    record = usage_record(tenant, created_at=now)

    insert([record])

    assert partition_of(record.request_id) == f"billing_usageevent_p{now:%Y%m}"


def test_a_row_of_a_month_without_partition_waits_in_the_default_one(tenant: TenantFixture) -> None:
    record = usage_record(tenant, created_at=FAR + timedelta(days=31))
    insert([record])
    assert partition_of(record.request_id) == "billing_usageevent_default"

    done = maintain_ledger_partitions(now=FAR)

    assert done.created == [f"billing_usageevent_p{month}" for month in ("203101", "203102", "203103")]
    assert done.moved_rows == 1
    assert partition_of(record.request_id) == "billing_usageevent_p203102"
    assert maintain_ledger_partitions(now=FAR).created == []


def test_months_past_retention_are_dropped(tenant: TenantFixture, settings: Settings) -> None:
    settings.LEDGER_RETENTION_MONTHS = 2
    maintain_ledger_partitions(now=FAR)
    expired, kept, unpartitioned = (
        usage_record(tenant, created_at=FAR + timedelta(days=40)),  # February 2031
        usage_record(tenant, created_at=FAR + timedelta(days=60)),  # March 2031
        usage_record(tenant, created_at=FAR - timedelta(days=400)),  # default partition, long expired
    )
    insert([expired, kept, unpartitioned])

    done = maintain_ledger_partitions(now=FAR + timedelta(days=120))  # May 2031: keep March and April

    assert "billing_usageevent_p203102" in done.dropped
    assert "billing_usageevent_p203103" not in done.dropped
    assert done.deleted_rows >= 1
    assert set(monthly_partitions()) >= {"billing_usageevent_p203103", "billing_usageevent_p203107"}
    request_ids = [expired.request_id, kept.request_id, unpartitioned.request_id]
    stored = UsageEvent.objects.filter(request_id__in=request_ids).values_list("request_id", flat=True)
    assert list(stored) == [kept.request_id]


def test_a_request_id_sent_again_in_another_month_is_stored_once(tenant: TenantFixture) -> None:
    first = usage_record(tenant, created_at=datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC))
    again = replace(first, created_at=datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC))

    insert([first])
    insert([again, again])

    rows = UsageEvent.objects.filter(request_id=first.request_id)
    assert list(rows.values_list("created_at", flat=True)) == [first.created_at]


def test_request_ids_are_forgotten_after_the_dedupe_window(settings: Settings) -> None:
    settings.LEDGER_DEDUPE_DAYS = 7
    now = timezone.now()
    UsageRequestId.objects.create(request_id="req_old", recorded_at=now - timedelta(days=8))
    UsageRequestId.objects.create(request_id="req_recent", recorded_at=now - timedelta(days=6))

    done = maintain_ledger_partitions(now=now)

    assert done.forgotten_request_ids >= 1
    left = UsageRequestId.objects.filter(request_id__in=["req_old", "req_recent"]).values_list(flat=True)
    assert list(left) == ["req_recent"]


def test_the_command_reports_what_it_did(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("ledger_partitions")
    call_command("ledger_partitions")

    assert capsys.readouterr().out.splitlines()[-3:] == [
        "created: none (0 rows moved in)",
        "dropped: none (0 default rows)",
        "request ids forgotten: 0",
    ]


def migrate_billing(target: str) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([("billing", target)])


def test_the_migration_converts_a_ledger_with_rows_and_back(tenant: TenantFixture) -> None:
    migrate_billing("0011_usage_request_id")
    now = timezone.now()
    recent, old, future = (usage_record(tenant, created_at=at) for at in (now, now - timedelta(days=62), FAR))
    with connection.cursor() as cursor:
        # Checked now: a deferred check still pending would stop the migration dropping the old table.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for record in (recent, old, future):
            cursor.execute(
                "INSERT INTO billing_usageevent (request_id, tenant_id, model, prompt_tokens,"
                " completion_tokens, cost_usd, latency_ms, status, error_type, estimated, created_at,"
                " meter_error) VALUES (%s, %s, 'm', 1, 2, 0.5, 3, 200, '', false, %s, '')",
                [record.request_id, tenant.tenant.pk, record.created_at],
            )
    before = list(UsageEvent.objects.order_by("id").values_list("id", "request_id", "cost_usd"))

    migrate_billing("0012_usage_event_partitioned")

    assert list(UsageEvent.objects.order_by("id").values_list("id", "request_id", "cost_usd")) == before
    assert partition_of(recent.request_id) == f"billing_usageevent_p{now:%Y%m}"
    assert partition_of(old.request_id) == f"billing_usageevent_p{old.created_at:%Y%m}"
    assert partition_of(future.request_id) == "billing_usageevent_default"
    claimed = UsageRequestId.objects.filter(request_id__in=[recent.request_id, old.request_id])
    assert list(claimed.values_list("request_id", flat=True)) == [recent.request_id]
    newer = usage_record(tenant, created_at=now)
    insert([newer])
    assert UsageEvent.objects.get(request_id=newer.request_id).pk > before[-1][0]

    migrate_billing("0011_usage_request_id")
    assert list(UsageEvent.objects.order_by("id").values_list("id", "request_id", "cost_usd"))[:3] == before
    migrate_billing("0012_usage_event_partitioned")
