from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from routing.services import register_local_models, register_simulated_provider
from tenants.batch import cached_template_dump, pg_dump_available
from tenants.models import Tenant
from tenants.services import ensure_public_tenant, ensure_template_schema, provision_tenant

DEMO_OWNER_EMAIL = "owner@acme.example"


def simulated_provider_url() -> str:
    port = os.environ.get("SIMULATED_PROVIDER_PORT", "8001")
    return f"http://127.0.0.1:{port}/v1"


class Command(BaseCommand):
    help = (
        "Migrate the public schema, the tenant template and every tenant; create the public "
        "tenant; register the local models (the default embedding model); with --demo, register "
        "the simulated provider and seed the demo tenant. Safe to run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--demo", action="store_true", help="Seed the demo tenant and print its logins.")
        parser.add_argument(
            "--simulated-provider",
            metavar="URL",
            default="",
            help="Register the simulated provider at this base URL (docker/compose.yaml: http://provider:8001/v1).",
        )
        parser.add_argument(
            "--executor",
            choices=["standard", "multiprocessing"],
            default="standard",
            help="django-tenants' executor for the tenants' migrations: multiprocessing migrates "
            "TENANT_MULTIPROCESSING_MAX_PROCESSES schemas at a time (deploy/k8s's migrations Job).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = max(0, options["verbosity"] - 1)
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=verbosity)
        ensure_public_tenant()
        ensure_template_schema(verbosity=verbosity)
        if pg_dump_available():
            cached_template_dump()  # signups replay it (Tenant.create_schema)
        call_command(
            "migrate_schemas",
            tenant=True,
            executor=options["executor"],
            interactive=False,
            verbosity=verbosity,
        )
        register_local_models()
        provider_url = options["simulated_provider"] or (simulated_provider_url() if options["demo"] else "")
        if provider_url:
            register_simulated_provider(provider_url)
        if options["demo"]:
            self.print_demo(self.ensure_demo_tenant())

    def ensure_demo_tenant(self) -> dict[str, str]:
        """Create the demo tenant once; its one-time secrets are kept under .data/ for
        later runs (development only: production never stores a key's secret)."""
        credentials_path = Path(settings.BASE_DIR) / ".data" / "demo-credentials.json"
        slug = settings.DEMO_TENANT_SLUG
        if Tenant.objects.filter(slug=slug).exists() and credentials_path.exists():
            return dict(json.loads(credentials_path.read_text()))
        if Tenant.objects.filter(slug=slug).exists():
            return {"tenant": slug, "note": "credentials were created elsewhere; not known here"}
        data = provision_tenant(slug=slug, name="Acme Inc.", owner_email=DEMO_OWNER_EMAIL).as_json()
        credentials_path.parent.mkdir(parents=True, exist_ok=True)
        credentials_path.write_text(json.dumps(data, indent=2))
        credentials_path.chmod(0o600)
        return data

    def print_demo(self, data: dict[str, str]) -> None:
        port = os.environ.get("PORT", "8000")
        self.stdout.write(self.style.SUCCESS("Demo tenant ready"))
        self.stdout.write(f"  dashboard: http://{data.get('domain', '')}:{port}/")
        for label, key in (
            ("login", "owner_email"),
            ("password", "owner_password"),
            ("API key", "api_key"),
            ("note", "note"),
        ):
            if key in data:
                self.stdout.write(f"  {label}: {data[key]}")
