from __future__ import annotations

from argparse import Namespace
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import get_public_schema_name, schema_context

from registry import services, transfer
from registry.models import Entry, Kind
from registry.policy import RefusedError, check_signature
from registry.signing import load_private_key
from tenants.models import Tenant

ACTOR = "manage.py registry"


class Command(BaseCommand):
    help = (
        "The signed registry: export entries (and the routing tables' models) to JSON documents, "
        "sign documents or stored entries, verify them, import documents (every signature checked; "
        "nothing is written if one fails), promote an entry one state on, or roll a name back. "
        "--tenant works in a tenant's schema (its prompts); the default is the platform's."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="action", required=True)
        export = commands.add_parser("export", help="Write entries as documents under --out.")
        export.add_argument("--out", required=True, type=Path)
        export.add_argument("--kind", choices=Kind.values)
        export.add_argument("--name")
        export.add_argument(
            "--from-routing", action="store_true", help="Export the routing tables' models (unsigned)."
        )
        sign = commands.add_parser("sign", help="Sign document files in place, or one stored entry.")
        sign.add_argument("paths", nargs="*", type=Path)
        sign.add_argument("--entry", nargs=3, metavar=("KIND", "NAME", "VERSION"))
        sign.add_argument("--key", required=True, type=Path, help="The Ed25519 private key (PEM).")
        sign.add_argument("--key-id", required=True)
        verify = commands.add_parser("verify", help="Verify document files, or every stored entry.")
        verify.add_argument("paths", nargs="*", type=Path)
        imports = commands.add_parser("import", help="Import signed documents (files or directories).")
        imports.add_argument("paths", nargs="+", type=Path)
        promote = commands.add_parser("promote", help="Move an entry on: draft -> staging -> production.")
        promote.add_argument("kind", choices=Kind.values)
        promote.add_argument("name")
        promote.add_argument("version", type=int)
        rollback = commands.add_parser("rollback", help="Make the previous production version current.")
        rollback.add_argument("kind", choices=Kind.values)
        rollback.add_argument("name")
        for command in (export, sign, verify, imports, promote, rollback):
            command.add_argument("--tenant", help="A tenant's slug: work in its schema.")

    def handle(self, *args: Any, **options: Any) -> None:
        with self.schema(options["tenant"]):
            try:
                getattr(self, f"do_{options['action']}")(Namespace(**options))
            except (transfer.TransferError, services.RegistryError, ValueError, OSError) as error:
                raise CommandError(str(error)) from None

    @contextmanager
    def schema(self, slug: str | None) -> Iterator[None]:
        if slug is None:
            with schema_context(get_public_schema_name()):
                yield
            return
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"No tenant `{slug}`.")
        with schema_context(tenant.schema_name):
            yield

    def do_export(self, options: Namespace) -> None:
        documents: list[tuple[transfer.Document, int | None]]
        if options.from_routing:
            documents = [(document, None) for document in transfer.routing_documents()]
        else:
            entries = Entry.objects.all()
            if options.kind:
                entries = entries.filter(kind=options.kind)
            if options.name:
                entries = entries.filter(name=options.name)
            documents = [(transfer.document_of(entry), entry.version) for entry in entries]
        for path in transfer.write(documents, options.out):
            self.stdout.write(f"wrote {path}")

    def do_sign(self, options: Namespace) -> None:
        if not options.entry and not options.paths:
            raise CommandError("Name document files or directories, or --entry KIND NAME VERSION.")
        key = load_private_key(options.key)
        if options.entry:
            kind, name, version = options.entry
            entry = Entry.objects.filter(kind=kind, name=name, version=int(version)).first()
            if entry is None:
                raise CommandError(f"No {kind} `{name}` version {version}.")
            services.sign_entry(entry, key, options.key_id, actor=ACTOR)
            self.stdout.write(f"signed {entry} with {options.key_id}")
        for path, document in transfer.read(options.paths):
            transfer.write_file(path, transfer.signed(document, key, options.key_id))
            self.stdout.write(f"signed {path} with {options.key_id}")

    def do_verify(self, options: Namespace) -> None:
        failures = []
        if options.paths:
            for path, document in transfer.read(options.paths):
                try:
                    transfer.check(path, document)
                except transfer.TransferError as error:
                    failures.append(str(error))
        else:
            for entry in Entry.objects.all():
                try:
                    check_signature(entry)
                except RefusedError as error:
                    failures.append(str(error))
        for failure in failures:
            self.stderr.write(f"refused: {failure}")
        if failures:
            raise CommandError(f"{len(failures)} refused")
        self.stdout.write("all verified")

    def do_import(self, options: Namespace) -> None:
        for entry, created in transfer.import_documents(transfer.read(options.paths), actor=ACTOR):
            self.stdout.write(f"{'imported' if created else 'unchanged'} {entry}")

    def do_promote(self, options: Namespace) -> None:
        entry = Entry.objects.filter(kind=options.kind, name=options.name, version=options.version).first()
        if entry is None:
            raise CommandError(f"No {options.kind} `{options.name}` version {options.version}.")
        self.stdout.write(f"promoted {services.promote(entry, actor=ACTOR)}")

    def do_rollback(self, options: Namespace) -> None:
        entry = services.rollback(options.kind, options.name, actor=ACTOR)
        self.stdout.write(f"rolled back {options.kind} {options.name} to v{entry.version}")
