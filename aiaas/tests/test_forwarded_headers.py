"""X-Forwarded-For and X-Forwarded-Proto reach the platform's client address and
scheme only from TRUSTED_PROXIES with BEHIND_TLS_PROXY on, through the served
platform (the test server's peer is 127.0.0.1); anyone else's are ignored."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from django.conf import settings

from aiaas.launcher import child_commands
from aiaas.proxies import forwarded_client, trusted_networks
from aiaas.tests.test_logs import Collected, wait_for_line
from testing.tenants import TenantFixture

SPOOFED = "203.0.113.9"
MANIFESTS = ("web.yaml", "gateway.yaml")
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture
def collected() -> Iterator[Collected]:
    handler = Collected()
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)


def trust(settings: Any, *proxies: str, behind_proxy: bool = True) -> None:
    settings.BEHIND_TLS_PROXY = behind_proxy
    settings.TRUSTED_PROXIES = list(proxies)


def logged_client(gateway: str, tenant: TenantFixture, collected: Collected) -> str:
    response = httpx.get(
        f"{gateway}/models",
        headers={
            "authorization": f"Bearer {tenant.admin_key}",
            "x-forwarded-for": f"198.51.100.1, {SPOOFED}",
        },
        timeout=10,
    )
    assert response.status_code == 200
    line = wait_for_line(collected, logger="aiaas.access", request_id=response.headers["x-request-id"])
    return str(line["client"])


def test_the_gateway_takes_the_forwarded_client_from_a_trusted_proxy(
    gateway: str, serving_tenant: TenantFixture, settings: Any, collected: Collected
) -> None:
    trust(settings, "10.0.0.0/8", "127.0.0.1")

    assert logged_client(gateway, serving_tenant, collected) == SPOOFED


@pytest.mark.parametrize(
    ("proxies", "behind_proxy"), [(("10.0.0.0/8",), True), ((), True), (("127.0.0.1",), False)]
)
def test_the_gateway_ignores_forwarded_clients_from_anyone_else(
    gateway: str,
    serving_tenant: TenantFixture,
    settings: Any,
    collected: Collected,
    proxies: tuple[str, ...],
    behind_proxy: bool,
) -> None:
    trust(settings, *proxies, behind_proxy=behind_proxy)

    assert logged_client(gateway, serving_tenant, collected) == "127.0.0.1"


def login_without_referer(platform_url: str, tenant: TenantFixture) -> httpx.Response:
    """A login form posted with a claimed https scheme and no Referer: Django's CSRF
    check refuses that only on a request it believes secure."""
    with httpx.Client(base_url=platform_url, headers={"host": tenant.host}, timeout=10) as browser:
        form = browser.get("/login/")
        token = CSRF_INPUT.search(form.text)
        assert token is not None, form.text
        return browser.post(
            "/login/",
            data={
                "csrfmiddlewaretoken": token.group(1),
                "username": f"nobody-{uuid.uuid4()}@example.com",
                "password": "x",
            },
            headers={"x-forwarded-proto": "https", "x-forwarded-for": SPOOFED},
        )


def test_django_believes_a_forwarded_https_scheme_from_a_trusted_proxy(
    platform_url: str, serving_tenant: TenantFixture, settings: Any
) -> None:
    trust(settings, "127.0.0.1/32")

    refused = login_without_referer(platform_url, serving_tenant)

    assert refused.status_code == 403
    assert "CSRF verification failed" in refused.text


def test_django_ignores_a_forwarded_https_scheme_from_anyone_else(
    platform_url: str, serving_tenant: TenantFixture, settings: Any
) -> None:
    trust(settings, "10.0.0.0/8")

    answered = login_without_referer(platform_url, serving_tenant)

    assert answered.status_code == 200  # the form again: wrong credentials, checked over plain HTTP
    assert "CSRF verification failed" not in answered.text


def test_the_client_is_the_rightmost_hop_that_is_not_a_proxy() -> None:
    networks = trusted_networks(["10.0.0.0/8"])

    assert forwarded_client(["1.1.1.1, 203.0.113.9, 10.0.0.2"], networks) == "203.0.113.9"
    assert forwarded_client(["1.1.1.1", "203.0.113.9"], networks) == "203.0.113.9"
    assert forwarded_client(["10.0.0.3, 10.0.0.2"], networks) == "10.0.0.3"
    assert forwarded_client(["1.1.1.1, not-an-address"], networks) is None
    assert forwarded_client([], networks) is None


def test_a_malformed_trusted_proxy_is_refused() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        trusted_networks(["10.0.0.0/33"])


def test_every_uvicorn_we_start_leaves_forwarded_headers_to_us() -> None:
    """uvicorn's own handling believes 127.0.0.1 (or FORWARDED_ALLOW_IPS) before we see the request."""
    root = Path(settings.BASE_DIR)
    compose = yaml.safe_load((root / "docker" / "compose.yaml").read_text())
    manifests = [
        document
        for name in MANIFESTS
        for document in yaml.safe_load_all((root / "deploy" / "k8s" / "base" / name).read_text())
        if document and document["kind"] == "Deployment"
    ]
    commands = [
        child_commands("python")["web"],
        compose["services"]["web"]["command"],
        *(manifest["spec"]["template"]["spec"]["containers"][0]["args"] for manifest in manifests),
    ]

    assert len(commands) == 2 + len(MANIFESTS)
    assert all("--no-proxy-headers" in command for command in commands), commands
    assert '"--no-proxy-headers"' in (root / "docker" / "Dockerfile").read_text()
    assert "proxy-headers" not in " ".join(
        " ".join(command).replace("--no-proxy-headers", "") for command in commands
    )
