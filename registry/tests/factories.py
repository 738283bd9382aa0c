"""Registry entries and keys for tests: made through the services, in the schema the caller entered."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from registry import prompts, services
from registry.models import Entry, Kind
from registry.signing import public_key_text, sign


def create_prompt(name: str, template: str) -> Entry:
    """The next version of a prompt in the current (tenant) schema."""
    return prompts.create_version(name, template, actor="test")


def tool_manifest(name: str = "lookup", endpoint: str = "https://tools.example/lookup") -> dict[str, Any]:
    return {
        "name": name,
        "version": "1",
        "implementation": "webhook",
        "endpoint": endpoint,
        "input_schema": {"type": "object"},
        "side_effect": "none",
    }


def create_tool(
    manifest: dict[str, Any], key: Ed25519PrivateKey | None = None, key_id: str = "staff"
) -> Entry:
    """A tool entry in the public schema (the caller entered it), signed when given a key."""
    signature = sign(manifest, key, key_id) if key is not None else None
    return services.create_entry(Kind.TOOL, manifest, actor="test", signature=signature)


def trusted(settings: Any, **keys: Ed25519PrivateKey) -> None:
    """Trust `keys` by key id, through pytest-django's `settings` fixture."""
    settings.REGISTRY_PUBLIC_KEYS = {key_id: public_key_text(key) for key_id, key in keys.items()}
