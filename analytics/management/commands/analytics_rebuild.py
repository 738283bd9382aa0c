"""`manage.py analytics_rebuild [--tenant SLUG]`: the read model again from the ledger."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analytics import rollups
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Rebuild the analytics rollups from the usage ledger (all tenants, or one)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", metavar="SLUG", help="Rebuild this tenant's figures only.")
        parser.add_argument("--batch-size", type=int, default=rollups.BATCH_SIZE)

    def handle(self, *args: Any, **options: Any) -> None:
        tenant_id = None
        if options["tenant"]:
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"no tenant {options['tenant']!r}")
            tenant_id = tenant.pk
        started = time.monotonic()

        def report(applied: int, total: int) -> None:
            rate = applied / max(time.monotonic() - started, 1e-9)
            self.stdout.write(f"{applied:,} / {total:,} ledger rows applied ({rate:,.0f} rows/s)")

        applied = rollups.rebuild(tenant_id, options["batch_size"], report)
        elapsed = time.monotonic() - started
        self.stdout.write(self.style.SUCCESS(f"Rebuilt from {applied:,} ledger rows in {elapsed:.1f} s."))
