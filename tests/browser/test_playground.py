"""The playground as issue #20 describes it, in a browser: `auto` says which tier
answered and why, a second model answers side by side, and the conversation is
copied as curl against this host's /v1."""

from __future__ import annotations

from playwright.sync_api import expect

from tenants.models import ApiKeyScope
from tenants.services import create_api_key
from testing.browser import DESKTOP, OpenPage, origin_of, sign_in
from testing.database import committed
from testing.tenants import TEST_PASSWORD, TenantFixture

KEY_NAME = "playground-side-by-side"


def test_auto_says_its_tier_and_why_beside_a_named_model_and_copies_as_curl(
    open_page: OpenPage, serving_tenant: TenantFixture, platform_url: str
) -> None:
    key = committed(
        lambda: create_api_key(serving_tenant.tenant, name=KEY_NAME, scopes=[ApiKeyScope.INFERENCE])
    )
    page = open_page(DESKTOP)
    origin = origin_of(serving_tenant.host, platform_url)
    sign_in(page, origin, serving_tenant.owner_email, TEST_PASSWORD)
    browser = page.visit(f"{origin}/dashboard/playground/")

    browser.get_by_label("Key").select_option(str(key.api_key.pk))
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
