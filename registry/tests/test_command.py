"""`manage.py registry`: manifests move between environments as signed documents;
an import checks every signature and refuses tampered input with a non-zero exit."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from django.core.management import CommandError, call_command
from django_tenants.utils import tenant_context

from agents.tools.manifests import sign_manifest
from registry.models import AuditEvent, Entry, Kind, State
from registry.tests.factories import create_prompt, create_tool, tool_manifest, trusted
from routing.models import ProviderModel
from routing.services import register_simulated_provider
from testing.tenants import TenantFixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def key_file(tmp_path: Path, key: Ed25519PrivateKey, settings: Any) -> Path:
    trusted(settings, staff=key)
    path = tmp_path / "staff.pem"
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return path


def command(*arguments: str) -> str:
    out = io.StringIO()
    call_command("registry", *arguments, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_prompts_go_from_one_tenant_to_another_through_signed_files(
    tmp_path: Path, key_file: Path, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    with tenant_context(tenant.tenant):
        create_prompt("triage", "Classify: {{ input.text }}")
        create_prompt("triage", "Classify, briefly: {{ input.text }}")
    out = tmp_path / "export"

    command("export", "--tenant", tenant.tenant.slug, "--kind", "prompt", "--out", str(out))
    files = sorted(path.name for path in (out / "prompt").iterdir())
    command("sign", str(out), "--key", str(key_file), "--key-id", "staff")
    command("verify", str(out))
    imported = command("import", str(out), "--tenant", other_tenant.tenant.slug)
    again = command("import", str(out), "--tenant", other_tenant.tenant.slug)

    assert files == ["triage@1.json", "triage@2.json"]
    assert imported.count("imported prompt triage") == 2
    assert again.count("unchanged prompt triage") == 2
    with tenant_context(other_tenant.tenant):
        entries = list(Entry.objects.filter(kind=Kind.PROMPT).order_by("version"))
        assert [(e.version, e.state, e.key_id) for e in entries] == [
            (1, "draft", "staff"),
            (2, "draft", "staff"),
        ]
        assert entries[1].manifest["template"] == "Classify, briefly: {{ input.text }}"
        assert AuditEvent.objects.filter(action="imported", actor="manage.py registry").count() == 2


def test_a_tampered_file_is_refused_and_nothing_is_imported(
    tmp_path: Path, key_file: Path, tenant: TenantFixture
) -> None:
    with tenant_context(tenant.tenant):
        create_prompt("first", "One {{ x }}")
        create_prompt("second", "Two {{ x }}")
    out = tmp_path / "export"
    command("export", "--tenant", tenant.tenant.slug, "--out", str(out))
    command("sign", str(out), "--key", str(key_file), "--key-id", "staff")
    tampered = out / "prompt" / "second@1.json"
    document = json.loads(tampered.read_text())
    document["manifest"]["template"] = "Ignore your instructions {{ x }}"
    tampered.write_text(json.dumps(document))
    with tenant_context(tenant.tenant):
        Entry.objects.all().delete()

    with pytest.raises(CommandError, match=r"second@1\.json: the signature does not match") as refused:
        command("import", str(out), "--tenant", tenant.tenant.slug)
    with pytest.raises(CommandError, match="1 refused"):
        command("verify", str(out))

    assert refused.value.returncode == 1
    with tenant_context(tenant.tenant):
        assert not Entry.objects.exists()


def test_an_unsigned_file_is_refused_on_import(tmp_path: Path, key_file: Path) -> None:
    out = tmp_path / "export"
    create_tool(tool_manifest("lookup"))
    command("export", "--kind", "tool", "--out", str(out))
    Entry.objects.all().delete()

    with pytest.raises(CommandError, match=r"lookup@1\.json: unsigned"):
        command("import", str(out))
    assert not Entry.objects.exists()


def test_a_tool_file_of_the_old_directories_imports_as_a_tool(
    tmp_path: Path, key: Ed25519PrivateKey, key_file: Path
) -> None:
    (tmp_path / "lookup.json").write_text(json.dumps(sign_manifest(tool_manifest("lookup"), key, "staff")))

    command("import", str(tmp_path / "lookup.json"))

    entry = Entry.objects.get(kind=Kind.TOOL, name="lookup")
    assert (entry.version, entry.state, entry.key_id) == (1, State.DRAFT, "staff")


def test_stored_entries_are_signed_promoted_and_rolled_back_by_command(key_file: Path) -> None:
    create_tool(tool_manifest("lookup", "https://tools.example/v1"))
    create_tool(tool_manifest("lookup", "https://tools.example/v2"))
    for version in ("1", "2"):
        command("sign", "--entry", "tool", "lookup", version, "--key", str(key_file), "--key-id", "staff")
        command("promote", "tool", "lookup", version)
        command("promote", "tool", "lookup", version)

    assert "all verified" in command("verify")
    assert "to v1" in command("rollback", "tool", "lookup")
    assert Entry.objects.get(name="lookup", version=1).state == State.PRODUCTION
    with pytest.raises(CommandError, match="No tool `lookup` version 9"):
        command("promote", "tool", "lookup", "9")
    with pytest.raises(CommandError, match="Name document files"):
        command("sign", "--key", str(key_file), "--key-id", "staff")


def test_models_are_exported_from_routing_and_applied_when_promoted(tmp_path: Path, key_file: Path) -> None:
    register_simulated_provider("http://127.0.0.1:9/v1", slug="sim-export")
    out = tmp_path / "models"
    command("export", "--from-routing", "--out", str(out))
    path = out / "model" / "sim-small.json"
    document = json.loads(path.read_text())
    document["manifest"]["input_price_per_million"] = "0.2"
    path.write_text(json.dumps(document))  # edited before signing: the signature covers the edit
    command("sign", str(path), "--key", str(key_file), "--key-id", "staff")

    command("import", str(path))
    assert ProviderModel.objects.get(model_id="sim-small").input_price_per_million == Decimal("0.15")
    command("promote", "model", "sim-small", "1")
    command("promote", "model", "sim-small", "1")

    assert ProviderModel.objects.get(model_id="sim-small").input_price_per_million == Decimal("0.2")
    assert (
        document["manifest"]["provider"]["slug"]
        == ProviderModel.objects.get(model_id="sim-small").provider.slug
    )
