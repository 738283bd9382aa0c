"""Ed25519 signatures over a manifest's canonical JSON, and the keys trusted to check them.

Trust lives in settings, not in the database the signatures protect:
REGISTRY_PUBLIC_KEYS (and the older AGENT_TOOL_PUBLIC_KEYS) map key ids to
public keys, and a key id in REGISTRY_RETIRED_KEYS is refused even while it is
still listed. Rotation: trust the new key, re-sign, retire the old one.
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
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key
from django.conf import settings

logger = logging.getLogger(__name__)


class SignatureError(ValueError):
    """A manifest whose signature must not be trusted: missing, tampered, by an unknown or retired key."""


@dataclass(frozen=True)
class Signature:
    key_id: str
    value: str  # base64 of the 64 raw bytes


def canonical(manifest: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes a signature covers."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(manifest: Any, private_key: Ed25519PrivateKey, key_id: str) -> Signature:
    return Signature(key_id, base64.b64encode(private_key.sign(canonical(manifest))).decode())


def public_key_text(private_key: Ed25519PrivateKey) -> str:
    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file; ValueError if it is something else."""
    key = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def trusted_keys() -> dict[str, Ed25519PublicKey]:
    """The configured public keys by id, retired ones left out."""
    retired = retired_key_ids()
    keys = {}
    configured = {**settings.AGENT_TOOL_PUBLIC_KEYS, **settings.REGISTRY_PUBLIC_KEYS}
    for key_id, text in configured.items():
        if key_id in retired:
            continue
        try:
            keys[key_id] = Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            logger.error("signing key %s is not a base64 Ed25519 public key; ignored", key_id)
    return keys


def retired_key_ids() -> frozenset[str]:
    return frozenset(settings.REGISTRY_RETIRED_KEYS)


def verify(
    manifest: Any, key_id: Any, signature: Any, keys: dict[str, Ed25519PublicKey] | None = None
) -> None:
    """Return if `signature` is `key_id`'s signature of `manifest` and that key is
    trusted and not retired; raise SignatureError saying which check failed."""
    if not key_id and not signature:
        raise SignatureError("unsigned (no key_id and no signature)")
    if key_id in retired_key_ids():
        raise SignatureError(f"signed by the retired key {key_id!r}")
    key = (trusted_keys() if keys is None else keys).get(key_id) if isinstance(key_id, str) else None
    if key is None:
        raise SignatureError(f"signed by an untrusted key {key_id!r}")
    try:
        key.verify(base64.b64decode(str(signature), validate=True), canonical(manifest))
    except (binascii.Error, InvalidSignature, TypeError, ValueError):
        raise SignatureError(
            "the signature does not match the manifest (tampered or wrongly signed)"
        ) from None


def platform_signature(manifest: Any) -> Signature | None:
    """The platform's signature of a tenant's entry as it is saved, with the key of
    REGISTRY_SIGNING_KEY_FILE and REGISTRY_SIGNING_KEY_ID; None when not configured."""
    path, key_id = settings.REGISTRY_SIGNING_KEY_FILE, settings.REGISTRY_SIGNING_KEY_ID
    if not path or not key_id:
        return None
    return sign(manifest, load_private_key(Path(path)), key_id)
