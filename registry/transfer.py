"""Entries moved between environments as signed documents, one JSON file each:
`{"kind", "manifest", "key_id", "signature"}` (a tool file of AGENT_TOOL_MANIFEST_DIRS,
which has no `kind`, reads as a tool).

An import checks every document (a trusted, unretired key's valid signature,
a valid manifest) before it writes any, and writes nothing when one fails. An
imported manifest identical to a stored version of its name is not stored
again; others arrive as drafts, to be promoted where they landed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import transaction

from registry import catalog, kinds, services
from registry.models import Action, Entry, Kind
from registry.signing import Signature, SignatureError, sign, verify
from routing.models import ProviderModel


class TransferError(ValueError):
    """A document that cannot be read, signed, verified or imported, naming its file."""


@dataclass(frozen=True)
class Document:
    kind: str
    manifest: dict[str, Any]
    key_id: str = ""
    signature: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "manifest": self.manifest,
            "key_id": self.key_id,
            "signature": self.signature,
        }

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", ""))


def document_of(entry: Entry) -> Document:
    return Document(entry.kind, entry.manifest, entry.key_id, entry.signature)


def routing_documents() -> list[Document]:
    """Unsigned documents of every model in the routing tables, as they are now."""
    models = ProviderModel.objects.select_related("provider").order_by("model_id")
    return [Document(Kind.MODEL, catalog.manifest_of(model)) for model in models]


def read(paths: list[Path]) -> list[tuple[Path, Document]]:
    """The documents in `paths` (files, or directories searched for *.json)."""
    files = [found for path in paths for found in (sorted(path.rglob("*.json")) if path.is_dir() else [path])]
    return [(path, parse(path)) for path in files]


def parse(path: Path) -> Document:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise TransferError(f"{path}: unreadable: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("manifest"), dict):
        raise TransferError(f"{path}: not a registry document (needs an object `manifest`)")
    kind, key_id, signature = data.get("kind", Kind.TOOL), data.get("key_id", ""), data.get("signature", "")
    if not all(isinstance(value, str) for value in (kind, key_id, signature)):
        raise TransferError(f"{path}: kind, key_id and signature are strings")
    return Document(kind, data["manifest"], key_id, signature)


def write(documents: list[tuple[Document, int | None]], directory: Path) -> list[Path]:
    """Each document as `<directory>/<kind>/<name>[@<version>].json`."""
    written = []
    for document, version in documents:
        path = directory / document.kind / f"{document.name}{f'@{version}' if version else ''}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file(path, document)
        written.append(path)
    return written


def write_file(path: Path, document: Document) -> None:
    path.write_text(json.dumps(document.as_json(), indent=2, sort_keys=True) + "\n")


def signed(document: Document, private_key: Ed25519PrivateKey, key_id: str) -> Document:
    signature = sign(document.manifest, private_key, key_id)
    return Document(document.kind, document.manifest, signature.key_id, signature.value)


def check(path: Path, document: Document) -> None:
    """Raise TransferError unless the document is validly signed by a trusted key and well formed."""
    try:
        kinds.check(document.kind, document.manifest)
        verify(document.manifest, document.key_id, document.signature)
    except (kinds.ManifestInvalidError, SignatureError) as error:
        raise TransferError(f"{path}: {error}") from None


def import_documents(documents: list[tuple[Path, Document]], *, actor: str) -> list[tuple[Entry, bool]]:
    """Each document's entry in the current schema and whether it is new; all or nothing."""
    for path, document in documents:
        check(path, document)
    results = []
    with transaction.atomic():
        for path, document in documents:
            existing = Entry.objects.filter(
                kind=document.kind, name=document.name, manifest=document.manifest
            )
            if (entry := existing.first()) is not None:
                results.append((entry, False))
                continue
            signature = Signature(document.key_id, document.signature)
            try:
                entry = services.create_entry(
                    document.kind, document.manifest, actor=actor, signature=signature, action=Action.IMPORTED
                )
            except services.RegistryError as error:
                raise TransferError(f"{path}: {error}") from None
            results.append((entry, True))
    return results
