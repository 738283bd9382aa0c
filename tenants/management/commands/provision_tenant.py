from __future__ import annotations

import json
import os
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from aiaas.launcher import EMBEDDED_MARKER
from tenants.services import ProvisioningError, provision_tenant


def ensure_bootstrapped() -> None:
    """A database with migrations to apply is bootstrapped first when it is the
    embedded development one (a fresh clone), and refused otherwise."""
    executor = MigrationExecutor(connection)
    if not executor.migration_plan(executor.loader.graph.leaf_nodes()):
        return
    if os.environ.get(EMBEDDED_MARKER) != "1":
        raise CommandError("the database has unapplied migrations: run `manage.py bootstrap` first")
    call_command("bootstrap", verbosity=0)


class Command(BaseCommand):
    help = "Create a tenant: schema, domain <slug>.<BASE_DOMAIN>, owner user and an admin API key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner-email", required=True)
        parser.add_argument("--owner-password", help="Generated and printed when omitted.")
        parser.add_argument("--plan", help="Plan slug; the default plan when omitted.")
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args: Any, **options: Any) -> None:
        ensure_bootstrapped()
        try:
            provisioned = provision_tenant(
                slug=options["slug"],
                name=options["name"],
                owner_email=options["owner_email"],
                plan_slug=options["plan"],
                owner_password=options["owner_password"],
            )
        except ProvisioningError as error:
            raise CommandError(str(error)) from None
        data = provisioned.as_json()
        if options["json"]:
            self.stdout.write(json.dumps(data))
        else:
            for key, value in data.items():
                self.stdout.write(f"{key}: {value}")
