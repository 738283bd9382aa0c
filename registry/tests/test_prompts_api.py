"""/api/v1/prompts: versions made, listed, read and rendered with variables by the
tenant's key; another tenant's key finds nothing. In production an agent's
`prompt_ref` reaches only a signed, promoted version."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from django_tenants.utils import tenant_context
from rest_framework.test import APIClient

from agents.models import Run
from registry import services
from registry.models import Entry, Kind
from registry.tests.factories import trusted
from testing.tenants import TenantFixture


def test_a_version_is_created_listed_and_rendered(api_client: APIClient) -> None:
    created = api_client.post(
        "/api/v1/prompts", {"name": "greet", "template": "Hello {{ who }}, {{ input.text }}"}, format="json"
    )
    prompt = created.json()

    rendered = api_client.post(
        f"/api/v1/prompts/{prompt['id']}/render",
        {"variables": {"who": "Ada", "input": {"text": "hi"}}},
        format="json",
    )
    missing = api_client.post(
        f"/api/v1/prompts/{prompt['id']}/render", {"variables": {"who": "Ada"}}, format="json"
    )
    listed = api_client.get("/api/v1/prompts").json()

    assert created.status_code == 201
    assert {k: prompt[k] for k in ("object", "name", "version", "variables", "state", "signed")} == {
        "object": "prompt",
        "name": "greet",
        "version": 1,
        "variables": ["input", "who"],
        "state": "draft",
        "signed": False,
    }
    assert rendered.status_code == 200
    assert rendered.json() == {
        "object": "prompt.rendering",
        "id": prompt["id"],
        "name": "greet",
        "version": 1,
        "text": "Hello Ada, hi",
    }
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "variables"
    assert "'input' is undefined" in missing.json()["error"]["message"]
    assert [p["name"] for p in listed["data"]] == ["greet"]


def test_a_version_is_signed_as_it_is_saved_when_the_platform_has_a_key(
    api_client: APIClient, tenant: TenantFixture, settings: Any, tmp_path: Any, key: Ed25519PrivateKey
) -> None:
    path = tmp_path / "platform.pem"
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    settings.REGISTRY_SIGNING_KEY_FILE, settings.REGISTRY_SIGNING_KEY_ID = str(path), "platform"
    trusted(settings, platform=key)

    prompt = api_client.post("/api/v1/prompts", {"name": "signed", "template": "Hi"}, format="json").json()

    assert prompt["signed"] is True
    with tenant_context(tenant.tenant):
        assert Entry.objects.get(pk=prompt["id"]).key_id == "platform"


def test_another_tenants_key_finds_no_prompt(
    api_client: APIClient, outsider_client: APIClient, tenant: TenantFixture
) -> None:
    prompt = api_client.post(
        "/api/v1/prompts", {"name": "private", "template": "Secret {{ x }}"}, format="json"
    ).json()

    assert outsider_client.get(f"/api/v1/prompts/{prompt['id']}").status_code == 404
    assert (
        outsider_client.post(
            f"/api/v1/prompts/{prompt['id']}/render", {"variables": {"x": 1}}, format="json"
        ).status_code
        == 404
    )
    assert outsider_client.get("/api/v1/prompts").json()["data"] == []
    with tenant_context(tenant.tenant):
        assert Entry.objects.filter(kind=Kind.PROMPT, name="private").count() == 1


def sign_and_promote(entry: Entry, key: Ed25519PrivateKey) -> None:
    signed = services.sign_entry(entry, key, "staff", actor="test")
    services.promote(services.promote(signed, actor="test"), actor="test")


def test_in_production_an_agent_runs_only_promoted_signed_versions_of_itself_and_its_prompt(
    api_client: APIClient, tenant: TenantFixture, settings: Any, key: Ed25519PrivateKey
) -> None:
    trusted(settings, staff=key)
    for template in ("v1 {{ input.text }}", "v2 {{ input.text }}"):
        api_client.post("/api/v1/prompts", {"name": "classify", "template": template}, format="json")
    step = {"id": "a", "kind": "llm", "prompt_ref": {"name": "classify"}}
    agent = api_client.post(
        "/api/v1/agents", {"spec": {"name": "triage", "steps": [step]}}, format="json"
    ).json()
    api_client.put(
        f"/api/v1/agents/{agent['id']}",
        {"spec": {"name": "triage", "steps": [{**step, "id": "b"}]}},
        format="json",
    )
    settings.AIAAS_PROFILE = "production"
    start = f"/api/v1/agents/{agent['id']}/runs"

    no_agent = api_client.post(start, {"input": {"text": "x"}}, format="json")
    with tenant_context(tenant.tenant):
        sign_and_promote(Entry.objects.get(kind=Kind.AGENT, name="triage", version=1), key)
    no_prompt = api_client.post(start, {"input": {"text": "x"}}, format="json")
    with tenant_context(tenant.tenant):
        sign_and_promote(Entry.objects.get(kind=Kind.PROMPT, name="classify", version=1), key)
    run = api_client.post(start, {"input": {"text": "x"}}, format="json")

    assert (no_agent.status_code, no_agent.json()["error"]["message"]) == (
        400,
        "spec: No current agent `triage`.",
    )
    assert no_prompt.status_code == 400
    error = no_prompt.json()["error"]
    assert (error["param"], error["message"]) == (
        "spec.steps[0].prompt_ref",
        "spec.steps[0].prompt_ref: No current prompt `classify`.",
    )
    assert run.status_code == 201, run.content
    with tenant_context(tenant.tenant):
        started = Run.objects.get(pk=run.json()["id"])
    assert started.agent_version == 1  # the promoted version, not the latest (2)
    assert started.spec["steps"][0]["id"] == "a"
    assert started.spec["steps"][0]["prompt"] == "v1 {{ input.text }}"


def test_a_version_is_promoted_to_production_and_rolled_back_through_the_api(api_client: APIClient) -> None:
    first = api_client.post(
        "/api/v1/prompts", {"name": "steps", "template": "One {{ x }}"}, format="json"
    ).json()
    second = api_client.post(
        "/api/v1/prompts", {"name": "steps", "template": "Two {{ x }}"}, format="json"
    ).json()
    states = []
    for version in (first, second):
        for _ in range(2):
            moved = api_client.post(f"/api/v1/prompts/{version['id']}/promote")
            states.append((moved.status_code, moved.json()["version"], moved.json()["state"]))
    again = api_client.post(f"/api/v1/prompts/{second['id']}/promote")
    rolled = api_client.post(f"/api/v1/prompts/{second['id']}/rollback")
    nothing_left = api_client.post(f"/api/v1/prompts/{second['id']}/rollback")
    listed = {p["version"]: p["state"] for p in api_client.get("/api/v1/prompts").json()["data"]}

    assert states == [
        (200, 1, "staging"),
        (200, 1, "production"),
        (200, 2, "staging"),
        (200, 2, "production"),
    ]
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invalid_state"
    assert "cannot be promoted" in again.json()["error"]["message"]
    assert (rolled.status_code, rolled.json()["version"], rolled.json()["state"]) == (200, 1, "production")
    assert nothing_left.status_code == 409
    assert listed == {1: "production", 2: "rolled_back"}
