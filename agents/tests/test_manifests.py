"""Tool manifests: only those signed by a trusted staff key load; anything else is refused."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command

from agents.tools.manifests import (
    ManifestError,
    load_manifest,
    load_registry,
    public_key_text,
    sign_manifest,
    verify,
)
from testing.agents import tool_manifests, write_signed_manifests

MANIFEST = tool_manifests("https://tools.example")[0]


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_a_signed_manifest_verifies(key: Ed25519PrivateKey) -> None:
    manifest = verify(sign_manifest(MANIFEST, key, "staff"), {"staff": key.public_key()})

    assert (manifest.name, manifest.version, manifest.key_id) == ("reserve", "1", "staff")
    assert manifest.compensation == {"tool": "release", "input": {"resource": "{{ input.resource }}"}}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d["manifest"].update(endpoint="https://evil.example/apply"), "tampered"),
        (lambda d: d["manifest"].update(side_effect="none"), "tampered"),
        (lambda d: d.update(signature=base64.b64encode(b"x" * 64).decode()), "tampered"),
        (lambda d: d.update(signature="not base64!"), "tampered"),
        (lambda d: d.update(key_id="someone-else"), "untrusted"),
        (lambda d: d.pop("signature"), "not a signed manifest"),
    ],
)
def test_an_unsigned_tampered_or_untrusted_manifest_is_refused(
    key: Ed25519PrivateKey, change: Any, reason: str
) -> None:
    document = sign_manifest(json.loads(json.dumps(MANIFEST)), key, "staff")
    change(document)

    with pytest.raises(ManifestError, match=reason):
        verify(document, {"staff": key.public_key()})


def test_a_manifest_signed_by_another_key_is_refused(key: Ed25519PrivateKey) -> None:
    document = sign_manifest(MANIFEST, Ed25519PrivateKey.generate(), "staff")

    with pytest.raises(ManifestError, match="tampered or wrongly signed"):
        verify(document, {"staff": key.public_key()})


def test_a_signed_but_malformed_manifest_is_refused(key: Ed25519PrivateKey) -> None:
    document = sign_manifest({**MANIFEST, "implementation": "shell"}, key, "staff")

    with pytest.raises(ManifestError, match="malformed manifest at implementation"):
        verify(document, {"staff": key.public_key()})


def test_the_registry_loads_only_verified_files(
    key: Ed25519PrivateKey, tmp_path: Path, settings: Any
) -> None:
    write_signed_manifests(tmp_path, tool_manifests("https://tools.example"), key, "staff")
    tampered = json.loads((tmp_path / "http.json").read_text())
    tampered["manifest"]["allowed_hosts"] = ["169.254.169.254"]
    (tmp_path / "http.json").write_text(json.dumps(tampered))
    (tmp_path / "unsigned.json").write_text(json.dumps({**MANIFEST, "name": "unsigned"}))
    settings.AGENT_TOOL_MANIFEST_DIRS = [str(tmp_path)]
    settings.AGENT_TOOL_PUBLIC_KEYS = {"staff": public_key_text(key)}

    assert sorted(load_registry()) == ["email", "release", "reserve"]


def test_staff_sign_with_the_management_commands(tmp_path: Path, settings: Any) -> None:
    key_file, manifest_file, signed_file = (
        tmp_path / "staff.pem",
        tmp_path / "m.json",
        tmp_path / "signed.json",
    )
    manifest_file.write_text(json.dumps(MANIFEST))
    call_command("tool_signing_key", key_id="staff", out=str(key_file), stdout=(out := io.StringIO()))
    key_id, _, public = out.getvalue().strip().partition("=")
    call_command(
        "sign_tool_manifest",
        str(manifest_file),
        key=str(key_file),
        key_id="staff",
        out=str(signed_file),
        stdout=io.StringIO(),
    )
    settings.AGENT_TOOL_PUBLIC_KEYS = {key_id: public}

    assert load_manifest(signed_file).name == "reserve"
    assert key_file.stat().st_mode & 0o777 == 0o600
