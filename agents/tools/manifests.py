"""Tool manifests signed with Ed25519 by staff, verified every time they are loaded.

A manifest file is JSON: `{"manifest": {...}, "key_id": "...", "signature":
"<base64>"}`. The signature covers the manifest's canonical JSON (sorted keys,
no spaces, UTF-8). A file whose key is not trusted (settings
AGENT_TOOL_PUBLIC_KEYS), whose signature does not verify, or whose manifest is
malformed is refused: it never enters the registry.

Staff sign with `manage.py sign_tool_manifest` (agents/management/commands).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match

from agents.spec import path_of

logger = logging.getLogger(__name__)

IMPLEMENTATIONS = ("http_request", "webhook", "email")
MANIFEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "version", "implementation", "input_schema", "side_effect"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z][a-z0-9_.-]{0,99}$"},
        "version": {"type": "string", "minLength": 1, "maxLength": 50},
        "description": {"type": "string"},
        "implementation": {"enum": list(IMPLEMENTATIONS)},
        "endpoint": {"type": "string", "pattern": "^https?://"},
        "input_schema": {"type": "object"},
        "output_schema": {"type": "object"},
        "side_effect": {"enum": ["none", "write"]},
        "compensation": {
            "type": "object",
            "required": ["tool"],
            "additionalProperties": False,
            "properties": {"tool": {"type": "string"}, "input": {}},
        },
        "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 300},
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 10},
        "allowed_hosts": {"type": "array", "items": {"type": "string"}},
    },
    "if": {"properties": {"implementation": {"const": "webhook"}}},
    "then": {"required": ["endpoint"]},
}
MANIFEST_VALIDATOR = Draft202012Validator(MANIFEST_SCHEMA)


class ManifestError(ValueError):
    """A manifest that must not be loaded: unsigned, tampered, untrusted or malformed."""


@dataclass(frozen=True)
class ToolManifest:
    name: str
    version: str
    implementation: str
    input_schema: dict[str, Any]
    side_effect: str
    output_schema: dict[str, Any] | None = None
    endpoint: str = ""
    compensation: dict[str, Any] | None = None
    timeout_seconds: float = 10.0
    max_attempts: int = 3
    allowed_hosts: tuple[str, ...] = ()
    description: str = ""
    key_id: str = ""

    @property
    def has_side_effect(self) -> bool:
        return self.side_effect == "write"


def canonical(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_manifest(manifest: dict[str, Any], private_key: Ed25519PrivateKey, key_id: str) -> dict[str, Any]:
    """The signed file's content for `manifest`."""
    signature = private_key.sign(canonical(manifest))
    return {"manifest": manifest, "key_id": key_id, "signature": base64.b64encode(signature).decode()}


def public_key_text(private_key: Ed25519PrivateKey) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def trusted_keys() -> dict[str, Ed25519PublicKey]:
    keys = {}
    for key_id, text in settings.AGENT_TOOL_PUBLIC_KEYS.items():
        try:
            keys[key_id] = Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            logger.error("tool signing key %s is not a base64 Ed25519 public key; ignored", key_id)
    return keys


def verify(document: Any, keys: dict[str, Ed25519PublicKey]) -> ToolManifest:
    """The manifest in a signed document, or ManifestError saying why not."""
    if not isinstance(document, dict) or not {"manifest", "key_id", "signature"} <= document.keys():
        raise ManifestError("not a signed manifest (needs manifest, key_id and signature)")
    manifest, key_id = document["manifest"], document["key_id"]
    key = keys.get(key_id) if isinstance(key_id, str) else None
    if key is None:
        raise ManifestError(f"signed by an untrusted key {key_id!r}")
    try:
        signature = base64.b64decode(str(document["signature"]), validate=True)
        key.verify(signature, canonical(manifest))
    except (binascii.Error, InvalidSignature, TypeError, ValueError):
        raise ManifestError(
            "the signature does not match the manifest (tampered or wrongly signed)"
        ) from None
    error = best_match(MANIFEST_VALIDATOR.iter_errors(manifest))
    if error is not None:
        raise ManifestError(
            f"malformed manifest at {path_of(error.absolute_path) or 'manifest'}: {error.message}"
        )
    for name in ("input_schema", "output_schema"):
        try:
            Draft202012Validator.check_schema(manifest.get(name, {}))
        except SchemaError as schema_error:
            raise ManifestError(f"{name} is not a valid JSON Schema: {schema_error.message}") from None
    fields = {**manifest, "allowed_hosts": tuple(manifest.get("allowed_hosts", ())), "key_id": key_id}
    return ToolManifest(**fields)


def load_manifest(path: Path, keys: dict[str, Ed25519PublicKey] | None = None) -> ToolManifest:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ManifestError(f"unreadable: {error}") from None
    return verify(document, trusted_keys() if keys is None else keys)


def load_registry() -> dict[str, ToolManifest]:
    """Every verified manifest under settings.AGENT_TOOL_MANIFEST_DIRS, by name.
    Refused files are logged and left out."""
    keys = trusted_keys()
    registry: dict[str, ToolManifest] = {}
    for directory in settings.AGENT_TOOL_MANIFEST_DIRS:
        for path in sorted(Path(directory).glob("*.json")):
            try:
                manifest = load_manifest(path, keys)
            except ManifestError as error:
                logger.warning("tool manifest %s refused: %s", path, error)
                continue
            registry[manifest.name] = manifest
    return registry
