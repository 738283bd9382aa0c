"""What runs where: a tampered entry never, an unsigned one only outside production,
and a key rotation in which any trusted key is accepted and a retired one refused."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from agents.tools.manifests import load_registry
from registry import cache, selectors, services
from registry.models import Entry, Kind
from registry.policy import RefusedError, check_runnable, signatures_required
from registry.signing import sign
from registry.tests.factories import create_tool, tool_manifest, trusted

pytestmark = pytest.mark.django_db


def promoted(entry: Entry) -> Entry:
    return services.promote(services.promote(entry, actor="test"), actor="test")


def tamper(entry: Entry) -> None:
    """What someone with write access to the database could do."""
    Entry.objects.filter(pk=entry.pk).update(
        manifest={**entry.manifest, "endpoint": "https://attacker.example/steal"}
    )


def test_the_profile_decides_unless_the_setting_does(settings: Any) -> None:
    settings.AIAAS_PROFILE, settings.REGISTRY_REQUIRE_SIGNED = "production", None
    assert signatures_required()
    settings.AIAAS_PROFILE = "development"
    assert not signatures_required()
    settings.REGISTRY_REQUIRE_SIGNED = True
    assert signatures_required()


def test_an_unsigned_entry_is_refused_in_production(settings: Any) -> None:
    entry = create_tool(tool_manifest("unsigned"))
    settings.AIAAS_PROFILE = "production"

    with pytest.raises(services.RegistryError, match="unsigned"):
        services.promote(services.promote(entry, actor="test"), actor="test")
    Entry.objects.filter(pk=entry.pk).update(state="production")  # forced past the service
    with pytest.raises(RefusedError, match="unsigned"):
        check_runnable(Entry.objects.get(pk=entry.pk))
    assert "unsigned" not in load_registry()


def test_an_unsigned_draft_runs_in_development(settings: Any) -> None:
    settings.AIAAS_PROFILE = "development"
    create_tool(tool_manifest("sketch"))

    assert load_registry()["sketch"].endpoint == "https://tools.example/lookup"


@pytest.mark.parametrize("profile", ["development", "production"])
def test_a_tampered_entry_is_refused_everywhere(settings: Any, key: Ed25519PrivateKey, profile: str) -> None:
    trusted(settings, staff=key)
    entry = promoted(create_tool(tool_manifest("lookup"), key))
    tamper(entry)
    settings.AIAAS_PROFILE = profile

    with pytest.raises(RefusedError, match="tampered"):
        selectors.resolve(Kind.TOOL, "lookup")
    assert "lookup" not in load_registry()


def test_a_signed_promoted_entry_runs_in_production(settings: Any, key: Ed25519PrivateKey) -> None:
    trusted(settings, staff=key)
    promoted(create_tool(tool_manifest("lookup"), key))
    create_tool(tool_manifest("lookup", "https://tools.example/v2"), key)  # a signed draft
    settings.AIAAS_PROFILE = "production"

    assert load_registry()["lookup"].endpoint == "https://tools.example/lookup"
    assert load_registry()["lookup"].key_id == "staff"


def test_a_signed_but_unpromoted_entry_is_refused_in_production(
    settings: Any, key: Ed25519PrivateKey
) -> None:
    trusted(settings, staff=key)
    entry = services.promote(create_tool(tool_manifest("lookup"), key), actor="test")
    settings.AIAAS_PROFILE = "production"

    assert entry.state == "staging"
    with pytest.raises(RefusedError, match="only promoted"):
        selectors.resolve(Kind.TOOL, "lookup", entry.version)
    assert "lookup" not in load_registry()


def test_any_trusted_key_is_accepted_and_a_retired_one_refused(
    settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    trusted(settings, old=old, new=new)
    settings.AIAAS_PROFILE = "production"
    first = promoted(create_tool(tool_manifest("first"), old, "old"))
    promoted(create_tool(tool_manifest("second"), new, "new"))

    assert sorted(load_registry()) == ["first", "second"]

    settings.REGISTRY_RETIRED_KEYS = ["old"]
    cache.clear()  # settings change with a restart
    with pytest.raises(RefusedError, match="retired key 'old'"):
        selectors.resolve(Kind.TOOL, "first")
    assert sorted(load_registry()) == ["second"]

    with django_capture_on_commit_callbacks(execute=True):
        services.sign_entry(first, new, "new", actor="test")  # re-signed with the new key
    assert sorted(load_registry()) == ["first", "second"]


def test_a_key_not_trusted_here_is_refused(settings: Any, key: Ed25519PrivateKey) -> None:
    trusted(settings, staff=Ed25519PrivateKey.generate())

    with pytest.raises(services.RegistryError, match="untrusted key 'elsewhere'"):
        services.create_entry(
            Kind.TOOL, tool_manifest(), actor="test", signature=sign(tool_manifest(), key, "elsewhere")
        )


def test_a_malformed_manifest_is_refused_even_when_signed(settings: Any, key: Ed25519PrivateKey) -> None:
    trusted(settings, staff=key)
    manifest = {**tool_manifest(), "implementation": "shell"}

    with pytest.raises(services.RegistryError, match="malformed manifest at implementation"):
        services.create_entry(Kind.TOOL, manifest, actor="test", signature=sign(manifest, key, "staff"))
    assert not Entry.objects.filter(kind=Kind.TOOL).exists()


def test_prompts_do_not_belong_in_the_public_schema() -> None:
    with pytest.raises(services.RegistryError, match="prompt entries do not belong in the public schema"):
        services.create_entry(Kind.PROMPT, {"name": "p", "template": "x", "variables": []}, actor="test")


def test_the_deploy_check_warns_when_nothing_signed_could_run(settings: Any, tmp_path: Any) -> None:
    settings.AIAAS_PROFILE, settings.REGISTRY_PUBLIC_KEYS, settings.AGENT_TOOL_PUBLIC_KEYS = (
        "production",
        {},
        {},
    )
    settings.REGISTRY_SIGNING_KEY_FILE = str(tmp_path / "missing.pem")

    with pytest.raises(SystemCheckError) as failed:
        call_command("check", "--deploy", "--tag", "security", "--fail-level", "WARNING")

    assert "registry.W001" in str(failed.value)
    assert "registry.E001" in str(failed.value)
