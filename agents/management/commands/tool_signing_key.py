from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from django.core.management.base import BaseCommand, CommandError, CommandParser

from agents.tools.manifests import public_key_text


class Command(BaseCommand):
    help = "Create an Ed25519 key for signing tool manifests; print the AGENT_TOOL_PUBLIC_KEYS entry."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--key-id", required=True, help="The name manifests signed with it carry.")
        parser.add_argument("--out", required=True, help="Where to write the private key (PEM, mode 0600).")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["out"])
        if path.exists():
            raise CommandError(f"{path} exists; refusing to overwrite a signing key")
        key = Ed25519PrivateKey.generate()
        path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        path.chmod(0o600)
        self.stdout.write(f"{options['key_id']}={public_key_text(key)}")
