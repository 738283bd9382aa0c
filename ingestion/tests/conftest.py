"""Fixtures of the ingestion tests: the stock `openai` SDK against the served platform."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import openai
import pytest
from django.conf import settings
from pytest_django import Settings

from testing.tenants import TenantFixture


def sdk(platform_url: str, key: str) -> openai.OpenAI:
    """The SDK on the platform's /v1. Django serves these routes: it answers a host
    ALLOWED_HOSTS names (the test server listens on 127.0.0.1)."""
    headers = {"Host": settings.BASE_DOMAIN}
    return openai.OpenAI(
        base_url=f"{platform_url}/v1", api_key=key, max_retries=0, timeout=20, default_headers=headers
    )


@pytest.fixture
def owner(platform_url: str, serving_tenant: TenantFixture) -> openai.OpenAI:
    """The serving tenant's SDK: what it creates is committed by the server."""
    return sdk(platform_url, serving_tenant.admin_key)


@pytest.fixture
def outsider(platform_url: str, other_tenant: TenantFixture) -> openai.OpenAI:
    return sdk(platform_url, other_tenant.admin_key)


@pytest.fixture
def simulated_embeddings(settings: Settings, registry: str) -> str:
    """New collections embed with the simulated provider's model (64 dimensions)."""
    settings.INGESTION_EMBEDDING_MODEL = "sim-small"
    return "sim-small"


@pytest.fixture
def uploaded(owner: openai.OpenAI) -> Iterator[str]:
    stored = owner.files.create(
        file=("notes.md", b"# Notes\n\nTenancy keeps data apart."), purpose="assistants"
    )
    yield stored.id
    with contextlib.suppress(openai.NotFoundError):
        owner.files.delete(stored.id)
