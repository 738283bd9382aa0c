"""The production profile answers with HSTS, a Content-Security-Policy and __Host-
cookies; every page's scripts and styles are our static files or carry the
request's nonce, so the policy blocks nothing of ours (docs/decisions/0043)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from accounts.models import User
from testing.tenants import TenantFixture
from tests.browser.test_accessibility import DASHBOARD_PAGES, TENANT_URLCONF

TEMPLATES = Path(settings.BASE_DIR) / "templates"
# What a policy without 'unsafe-inline' refuses: an inline script or style without
# the nonce, an inline event handler, a style attribute.
# Data blocks (<script type="application/json">, json_script) are never run: CSP ignores them.
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*\btype=\"application/json\")[^>]*>", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style\b[^>]*>", re.IGNORECASE)
HANDLER_OR_STYLE_ATTRIBUTE = re.compile(r"<[a-z][^>]*\s(on[a-z]+|style)\s*=", re.IGNORECASE)
NONCE = re.compile(r"'nonce-([^']+)'")

PRODUCTION_RESPONSE = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client
secure = Client().get("/static/css/app.css", secure=True, HTTP_HOST="aiaas.example")
plain = Client().get("/static/css/app.css", HTTP_HOST="aiaas.example")
print(json.dumps({
    "secure": dict(secure.headers),
    "plain": [plain.status_code, plain.headers.get("Location")],
    "cookies": [settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME],
    "flags": [settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, settings.SESSION_COOKIE_HTTPONLY],
}))
"""


def production_response() -> dict[str, object]:
    unset = {"AIAAS_PROFILE", "DEBUG", "SECURE_COOKIES", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS"}
    env = {key: value for key, value in os.environ.items() if key not in unset}
    result = subprocess.run(  # noqa: S603 - our interpreter, our script
        [sys.executable, "-c", PRODUCTION_RESPONSE],
        env={
            **env,
            "DJANGO_SETTINGS_MODULE": "aiaas.settings",
            "SECRET_KEY": "production-" + "abcdefghij" * 5,
            "BASE_DOMAIN": "aiaas.example",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answered: dict[str, object] = json.loads(result.stdout)
    return answered


def test_the_production_profile_answers_with_hsts_a_policy_and_host_only_secure_cookies() -> None:
    answered = production_response()

    headers = answered["secure"]
    assert isinstance(headers, dict)
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert set(str(headers["Content-Security-Policy"]).split("; ")) == {
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
        "form-action 'self' *.aiaas.example:* https://checkout.stripe.com https://billing.stripe.com",
    }
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert answered["plain"] == [301, "https://aiaas.example/static/css/app.css"]
    assert answered["cookies"] == ["__Host-sessionid", "__Host-csrftoken"]
    assert answered["flags"] == [True, True, True]


@pytest.mark.parametrize(
    "path", sorted(TEMPLATES.rglob("*.html")), ids=lambda path: str(path.relative_to(TEMPLATES))
)
def test_no_template_holds_what_the_policy_refuses(path: Path) -> None:
    text = path.read_text()

    assert [tag for tag in INLINE_SCRIPT.findall(text) if "nonce=" not in tag] == []
    assert [tag for tag in INLINE_STYLE.findall(text) if "nonce=" not in tag] == []
    assert HANDLER_OR_STYLE_ATTRIBUTE.findall(text) == []


def inline_without_the_nonce(html: str, policy: str) -> list[str]:
    nonces = NONCE.findall(policy)
    tags = INLINE_SCRIPT.findall(html) + INLINE_STYLE.findall(html)
    return [tag for tag in tags if not any(f'nonce="{nonce}"' in tag for nonce in nonces)]


def test_every_dashboard_page_carries_the_policy_and_nothing_inline_without_its_nonce(
    tenant: TenantFixture,
) -> None:
    browser = tenant.web_client()
    failures = []
    for name in DASHBOARD_PAGES:
        response = browser.get(reverse(name, urlconf=TENANT_URLCONF))
        policy = response.headers.get("Content-Security-Policy", "")
        if "script-src 'self'" not in policy:
            failures.append(f"{name}: {response.status_code}, policy {policy!r}")
        elif blocked := inline_without_the_nonce(response.content.decode(), policy):
            failures.append(f"{name}: {blocked}")

    assert failures == []


def test_swagger_ui_runs_its_inline_script_under_the_nonce() -> None:
    response = Client(HTTP_HOST=settings.BASE_DOMAIN).get("/api/docs/")

    policy = response.headers["Content-Security-Policy"]
    (nonce,) = set(NONCE.findall(policy))
    html = response.content.decode()
    assert response.status_code == 200
    assert inline_without_the_nonce(html, policy) == []
    assert html.count(f'nonce="{nonce}"') == 2


def test_the_admin_index_and_every_change_list_carry_nothing_inline_without_its_nonce(db: None) -> None:
    """Django's list without actions writes an inline style (templates/admin/change_list.html);
    django-tenants' app list wrote one on every page (settings.SHARED_APPS' order)."""
    staff = User.objects.create_superuser("csp-staff@aiaas.example", "a long test password 1")
    browser = Client(HTTP_HOST=settings.BASE_DOMAIN)
    browser.force_login(staff)
    failures, without_actions = [], 0
    pages: dict[str, admin.ModelAdmin[Any] | None] = {
        reverse("admin:index", urlconf=settings.PUBLIC_SCHEMA_URLCONF): None
    }
    for model, registered in admin.site._registry.items():
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"
        pages[reverse(name, urlconf=settings.PUBLIC_SCHEMA_URLCONF)] = registered
    for path, model_admin in pages.items():
        response = browser.get(path)
        html = response.content.decode()
        policy = response.headers.get("Content-Security-Policy", "")
        if model_admin is not None:
            without_actions += not model_admin.get_actions(response.wsgi_request)
        if response.status_code != 200:
            failures.append(f"{path}: {response.status_code}")
        elif blocked := inline_without_the_nonce(html, policy):
            failures.append(f"{path}: {blocked}")

    assert failures == []
    assert without_actions > 0  # the lists that write the style were among them
