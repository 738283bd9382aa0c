from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.services import ProvisioningError, provision_tenant


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
