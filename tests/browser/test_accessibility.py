"""axe-core on every dashboard page a signed-in owner can open without an id in
its URL, and on the public pages, at both widths: no serious or critical
violation, and no page wider than the window."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse

from testing.browser import VIEWPORTS, OpenPage, Viewport, describe, origin_of, sideways_overflow, sign_in
from testing.tenants import TEST_PASSWORD, TenantFixture

TENANT_URLCONF = "aiaas.urls_tenant"
DASHBOARD_PAGES = (
    "dashboard:overview",
    "dashboard:usage",
    "dashboard:analytics",
    "dashboard:routing",
    "dashboard:keys",
    "dashboard:team",
    "dashboard:playground",
    "dashboard:billing",
    "dashboard:request-logs",
    "dashboard:settings",
    "agents:list",
    "agents:new",
    "agents:runs",
    "ingestion:collections",
    "evals:experiments",
    "evals:new",
    "evals:compare",
    "evals:router-quality",
    "evals:datasets",
)


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=lambda viewport: viewport.name)
def test_every_dashboard_page_passes_axe(
    open_page: OpenPage,
    serving_tenant: TenantFixture,
    platform_url: str,
    viewport: Viewport,
) -> None:
    page = open_page(viewport)
    tenant_origin = origin_of(serving_tenant.host, platform_url)
    sign_in(page, tenant_origin, serving_tenant.owner_email, TEST_PASSWORD)

    failures = []
    for name in DASHBOARD_PAGES:
        page.goto(tenant_origin + reverse(name, urlconf=TENANT_URLCONF))
        if violations := page.violations():
            failures.append(f"{name} ({page.page.url}):\n{describe(violations)}")
        if overflow := sideways_overflow(page.page):
            failures.append(f"{name} ({page.page.url}): {overflow}")

    assert not failures, f"axe at {viewport.name}:\n" + "\n".join(failures)


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=lambda viewport: viewport.name)
def test_the_public_pages_pass_axe(
    open_page: OpenPage,
    serving_tenant: TenantFixture,
    platform_url: str,
    viewport: Viewport,
) -> None:
    page = open_page(viewport)

    page.visit(origin_of(settings.BASE_DOMAIN, platform_url) + "/")
    page.visit(origin_of(serving_tenant.host, platform_url) + "/password-reset/")
