from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from billing.partitions import maintain_ledger_partitions


class Command(BaseCommand):
    help = (
        "Create the usage ledger's month partitions ahead (LEDGER_PARTITIONS_AHEAD), detach and "
        "drop those past LEDGER_RETENTION_MONTHS, forget request ids older than LEDGER_DEDUPE_DAYS. "
        "Beat runs the same every six hours (billing.maintain_ledger_partitions)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        done = maintain_ledger_partitions()
        self.stdout.write(f"created: {', '.join(done.created) or 'none'} ({done.moved_rows} rows moved in)")
        self.stdout.write(f"dropped: {', '.join(done.dropped) or 'none'} ({done.deleted_rows} default rows)")
        self.stdout.write(f"request ids forgotten: {done.forgotten_request_ids}")
