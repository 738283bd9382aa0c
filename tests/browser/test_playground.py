"""The playground as issue #20 describes it, in a browser: `auto` says which tier
answered and why, a second model answers side by side, the conversation is
copied as curl against this host's /v1, and Stop says "Stopped." (not an error)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tenants.models import ApiKeyScope
from tenants.services import create_api_key
from testing.browser import DESKTOP, AuditedPage, OpenPage, origin_of, sign_in
from testing.database import committed
from testing.tenants import TEST_PASSWORD, TenantFixture

KEY_NAME = "playground-side-by-side"


@pytest.fixture
def playground_key(serving_tenant: TenantFixture) -> int:
    issued = committed(
        lambda: create_api_key(serving_tenant.tenant, name=KEY_NAME, scopes=[ApiKeyScope.INFERENCE])
    )
    return issued.api_key.pk


@pytest.fixture
def slow_simulator(simulator_url: str) -> Iterator[None]:
    """sim-small at eight tokens a second, so a person can press Stop mid-answer (slower
    would pass the test provider's 0.5 s between tokens, a timeout)."""
    pace = simulator_url.removesuffix("/v1") + "/_sim/pace"
    httpx.post(pace, json={"tokens_per_second": 8}, timeout=5).raise_for_status()
    yield
    httpx.post(pace, json={"tokens_per_second": 0}, timeout=5).raise_for_status()


def playground(page: AuditedPage, origin: str, tenant: TenantFixture, key_id: int) -> Page:
    """The playground of `tenant`, signed in as its owner, with the key `key_id` chosen."""
    sign_in(page, origin, tenant.owner_email, TEST_PASSWORD)
    browser = page.visit(f"{origin}/dashboard/playground/")
    browser.get_by_label("Key").select_option(str(key_id))
    return browser


def test_auto_says_its_tier_and_why_beside_a_named_model_and_copies_as_curl(
    open_page: OpenPage, serving_tenant: TenantFixture, platform_url: str, playground_key: int
) -> None:
    page, origin = open_page(DESKTOP), origin_of(serving_tenant.host, platform_url)
    browser = playground(page, origin, serving_tenant, playground_key)
    browser.get_by_label("Model").select_option("auto")
    browser.get_by_label("Compare with").select_option("sim-small")
    browser.get_by_label("Message").fill("What is a tenant?")
    browser.get_by_role("button", name="Send").click()

    for side in ("a", "b"):
        expect(browser.locator(f"#playground-status-{side}")).to_have_text("Done.")
    expect(browser.locator("#playground-title-a")).to_have_text("auto")
    expect(browser.locator("#playground-title-b")).to_have_text("sim-small")
    routed = browser.locator("#playground-turns-a .playground-turn").last
    expect(routed.locator('[data-fact="model"]')).to_contain_text("(tier ")
    expect(routed.locator('[data-fact="route"]')).to_contain_text("auto ")
    named = browser.locator("#playground-turns-b .playground-turn").last
    expect(named.locator('[data-fact="model"]')).to_have_text("sim-small (tier 1)")
    expect(named.locator('[data-fact="route"]')).to_have_text("requested")
    browser.get_by_role("button", name="Copy as curl").click()
    snippet = browser.locator("#playground-snippet")
    expect(snippet).to_contain_text(f"curl {origin}/v1/chat/completions")
    expect(snippet).to_contain_text('"content": "What is a tenant?"')
    page.audit()


def test_stop_keeps_what_arrived_and_says_stopped(
    open_page: OpenPage,
    serving_tenant: TenantFixture,
    platform_url: str,
    playground_key: int,
    slow_simulator: None,
) -> None:
    page, origin = open_page(DESKTOP), origin_of(serving_tenant.host, platform_url)
    browser = playground(page, origin, serving_tenant, playground_key)
    browser.get_by_label("Model").select_option("sim-small")
    browser.get_by_label("Message").fill("Tell me a long story about tenants.")
    browser.get_by_role("button", name="Send").click()
    answer = browser.locator("#playground-turns-a .playground-turn").last.locator(".playground-text")
    expect(answer).not_to_be_empty()

    browser.get_by_role("button", name="Stop").click()

    expect(browser.locator("#playground-status-a")).to_have_text("Stopped.")
    expect(answer).not_to_be_empty()
    expect(browser.get_by_role("button", name="Send")).to_be_enabled()
    page.audit()
