"""The layout every page shares: a skip link, a menu button on narrow screens, a
favicon on every host, and tables that scroll inside focusable regions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from testing.tenants import TenantFixture

TEMPLATES = Path(settings.BASE_DIR) / "templates"


def test_a_dashboard_page_has_a_skip_link_to_main_and_a_menu_button(tenant: TenantFixture) -> None:
    content = tenant.web_client().get("/dashboard/keys/").content.decode()

    assert '<a class="skip-link" href="#main">Skip to content</a>' in content
    assert '<main class="main" id="main" tabindex="-1">' in content
    assert re.search(
        r'<button[^>]*id="menu-button"[^>]*aria-controls="sidebar-panel"[^>]*aria-expanded="false"', content
    )
    assert 'id="sidebar-panel"' in content
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in content


@pytest.mark.parametrize("path", ["/", "/login/"])
def test_public_and_sign_in_pages_have_a_skip_link_target_and_a_favicon(
    tenant: TenantFixture, path: str
) -> None:
    host = settings.BASE_DOMAIN if path == "/" else tenant.host
    content = Client(HTTP_HOST=host).get(path).content.decode()

    assert '<a class="skip-link" href="#main">' in content
    assert 'id="main"' in content
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in content


def test_favicon_ico_is_served_on_tenant_and_public_hosts(tenant: TenantFixture) -> None:
    for host in (tenant.host, settings.BASE_DOMAIN, "nobody.localhost"):
        response = Client(HTTP_HOST=host).get("/favicon.ico")

        assert response.status_code == 200, host
        assert b"".join(response.streaming_content)[:4] == b"\x00\x00\x01\x00"  # type: ignore[attr-defined]


def test_every_scrolling_table_is_a_focusable_labelled_region() -> None:
    wrappers = [
        (path.relative_to(TEMPLATES), tag)
        for path in TEMPLATES.rglob("*.html")
        for tag in re.findall(r'<div class="table-wrap"[^>]*>', path.read_text())
    ]

    assert wrappers
    unreachable = [
        (str(path), tag)
        for path, tag in wrappers
        if 'tabindex="0"' not in tag or 'role="region"' not in tag or 'aria-label="' not in tag
    ]
    assert unreachable == []


def test_templates_write_dates_one_way() -> None:
    """Dates go through the `when` and `day` filters (aiaas/formats.py), not ad hoc formats."""
    ad_hoc = [
        str(path.relative_to(TEMPLATES))
        for path in TEMPLATES.rglob("*.html")
        if '|date:"' in path.read_text()
    ]
    assert ad_hoc == []
