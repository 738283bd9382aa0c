from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from django.core.management.base import BaseCommand, CommandError, CommandParser

from agents.tools.manifests import ManifestError, sign_manifest, verify


class Command(BaseCommand):
    help = "Sign a tool manifest (JSON) with a staff Ed25519 key; write the signed file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("manifest", help="The manifest JSON file.")
        parser.add_argument("--key", required=True, help="The private key (PEM) from tool_signing_key.")
        parser.add_argument("--key-id", required=True)
        parser.add_argument("--out", required=True, help="The signed file, for AGENT_TOOL_MANIFEST_DIRS.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            manifest = json.loads(Path(options["manifest"]).read_text())
            key = load_pem_private_key(Path(options["key"]).read_bytes(), password=None)
        except (OSError, ValueError) as error:
            raise CommandError(str(error)) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise CommandError("the key is not an Ed25519 private key")
        signed = sign_manifest(manifest, key, options["key_id"])
        try:  # refuse to sign what would be refused at load
            verify(signed, {options["key_id"]: key.public_key()})
        except ManifestError as error:
            raise CommandError(str(error)) from None
        Path(options["out"]).write_text(json.dumps(signed, indent=2))
        self.stdout.write(f"signed {manifest['name']} {manifest['version']} -> {options['out']}")
