"""Tool manifests: what a tool is, signed with Ed25519 by staff, verified every time they are loaded.

Tools live in the signed registry (registry/, kind "tool", public schema): the
tools that run are its runnable entries (signed and promoted in production).
Outside production, signed files in AGENT_TOOL_MANIFEST_DIRS load too, as
before the registry: `{"manifest": {...}, "key_id": "...", "signature":
"<base64>"}`, the signature over the manifest's canonical JSON
(registry/signing.py). `manage.py registry import` moves such files into the
registry. A manifest that is unsigned, tampered, signed by an untrusted or
retired key, or malformed never loads.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match

from agents.spec import path_of
from registry import selectors as registry
from registry.models import Kind
from registry.policy import signatures_required
from registry.signing import SignatureError, public_key_text, sign, trusted_keys
from registry.signing import verify as verify_signature

__all__ = ["ManifestError", "ToolManifest", "load_registry", "public_key_text", "sign_manifest", "verify"]

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
        "allowed_ports": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 65535}},
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
    allowed_ports: tuple[int, ...] = ()
    description: str = ""
    key_id: str = ""

    @property
    def has_side_effect(self) -> bool:
        return self.side_effect == "write"


def sign_manifest(manifest: dict[str, Any], private_key: Ed25519PrivateKey, key_id: str) -> dict[str, Any]:
    """The signed file's content for `manifest`."""
    signature = sign(manifest, private_key, key_id)
    return {"manifest": manifest, "key_id": signature.key_id, "signature": signature.value}


def verify(document: Any, keys: dict[str, Ed25519PublicKey]) -> ToolManifest:
    """The manifest in a signed document, or ManifestError saying why not."""
    if not isinstance(document, dict) or not {"manifest", "key_id", "signature"} <= document.keys():
        raise ManifestError("not a signed manifest (needs manifest, key_id and signature)")
    try:
        verify_signature(document["manifest"], document["key_id"], document["signature"], keys)
    except SignatureError as error:
        raise ManifestError(str(error)) from None
    return tool_manifest(document["manifest"], document["key_id"])


def check_manifest(manifest: Any) -> None:
    """Raise ManifestError if `manifest` is not a valid tool manifest (the registry's check)."""
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


def tool_manifest(manifest: dict[str, Any], key_id: str) -> ToolManifest:
    check_manifest(manifest)
    fields = {
        **manifest,
        "allowed_hosts": tuple(manifest.get("allowed_hosts", ())),
        "allowed_ports": tuple(manifest.get("allowed_ports", ())),
        "key_id": key_id,
    }
    return ToolManifest(**fields)


def load_manifest(path: Path, keys: dict[str, Ed25519PublicKey] | None = None) -> ToolManifest:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ManifestError(f"unreadable: {error}") from None
    return verify(document, trusted_keys() if keys is None else keys)


def load_registry() -> dict[str, ToolManifest]:
    """Every tool that may run here, by name: the registry's runnable tool entries
    and, outside production, the verified files under AGENT_TOOL_MANIFEST_DIRS (a
    registry entry wins over a file of the same name). Refused ones are logged and
    left out."""
    tools = {} if signatures_required() else load_files()
    for name, entry in registry.platform_entries(Kind.TOOL).items():
        try:
            tools[name] = tool_manifest(entry.manifest, entry.key_id)
        except ManifestError as error:
            logger.warning("tool entry %s refused: %s", entry, error)
    return tools


def load_files() -> dict[str, ToolManifest]:
    keys = trusted_keys()
    tools: dict[str, ToolManifest] = {}
    for directory in settings.AGENT_TOOL_MANIFEST_DIRS:
        for path in sorted(Path(directory).glob("*.json")):
            try:
                manifest = load_manifest(path, keys)
            except ManifestError as error:
                logger.warning("tool manifest %s refused: %s", path, error)
                continue
            tools[manifest.name] = manifest
    return tools
