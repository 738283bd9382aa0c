"""URL sources within the tenant's outbound policy: a URL outside it is a 400 when it is
added, and a redirect outside it fails the document, at every hop. Two loopback
servers stand for an allowed port and another one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pytest_django import Settings
from rest_framework.test import APIClient

from ingestion.models import DocumentStatus
from ingestion.tests.test_api import create
from ingestion.tests.test_fetching import ingest_url
from tenants.models import Tenant
from tenants.services import set_outbound_policy
from testing.tenants import TenantFixture


class Site(BaseHTTPRequestHandler):
    """`/page` is text; `/go?<url>` redirects there."""

    def do_GET(self) -> None:
        if self.path.startswith("/go?"):
            self.send_response(302)
            self.send_header("Location", self.path.removeprefix("/go?"))
            self.end_headers()
            return
        if self.path != "/page":
            self.send_response(404)
            self.end_headers()
            return
        body = b"# A page\n\nWithin the policy, fetched and ingested.\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def ports() -> Iterator[tuple[int, int]]:
    """Two sites on loopback: the allowed port's and another's."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), Site) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield servers[0].server_address[1], servers[1].server_address[1]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def allowed_port(ports: tuple[int, int], tenant: TenantFixture, settings: Settings) -> int:
    """Loopback exempt by settings; the tenant allows 127.0.0.1 on the first port only."""
    settings.INGESTION_ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    settings.OUTBOUND_DEFAULT_PORTS = ["80", "443"]
    set_outbound_policy(Tenant.objects.get(pk=tenant.tenant.pk), hosts=["127.0.0.1"], ports=[ports[0]])
    return ports[0]


def test_a_page_within_the_policy_is_ingested(
    tenant: TenantFixture, registry: str, allowed_port: int
) -> None:
    status, message, _ = ingest_url(tenant, f"http://127.0.0.1:{allowed_port}/go?/page")

    assert status == DocumentStatus.READY, message


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("http://127.0.0.1:{other}/page", "port {other} is not among the allowed ports"),
        ("http://localhost:{port}/page", "localhost is not among the allowed hosts"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is not a public address"),
    ],
)
def test_a_redirect_outside_the_policy_fails_the_document(
    tenant: TenantFixture,
    registry: str,
    allowed_port: int,
    ports: tuple[int, int],
    target: str,
    error: str,
) -> None:
    values = {"port": allowed_port, "other": ports[1]}
    start = f"http://127.0.0.1:{allowed_port}/go?{target.format(**values)}"

    status, message, chunks = ingest_url(tenant, start)

    assert status == DocumentStatus.FAILED
    assert f"refused target: {error.format(**values)}" in message, message
    assert chunks == []


def test_a_url_outside_the_tenants_policy_is_a_400(
    api_client: APIClient,
    outsider_client: APIClient,
    tenant: TenantFixture,
    other_tenant: TenantFixture,
    registry: str,
) -> None:
    set_outbound_policy(Tenant.objects.get(pk=tenant.tenant.pk), hosts=["docs.example.com"], ports=[])
    set_outbound_policy(Tenant.objects.get(pk=other_tenant.tenant.pk), hosts=["wiki.example.org"], ports=[])
    ours = f"/api/v1/collections/{create(api_client).json()['id']}/documents"
    theirs = f"/api/v1/collections/{create(outsider_client).json()['id']}/documents"

    allowed = api_client.post(ours, {"url": "https://docs.example.com/guide"}, format="json")
    other_tenants_host = outsider_client.post(
        theirs, {"url": "https://docs.example.com/guide"}, format="json"
    )
    other_port = api_client.post(ours, {"url": "https://docs.example.com:8443/guide"}, format="json")

    assert allowed.status_code == 201, allowed.json()
    assert other_tenants_host.status_code == 400
    assert other_tenants_host.json()["error"]["code"] == "forbidden_url"
    assert other_tenants_host.json()["error"]["message"] == (
        "url: docs.example.com is not among the allowed hosts"
    )
    assert (other_port.status_code, other_port.json()["error"]["message"]) == (
        400,
        "url: port 8443 is not among the allowed ports",
    )
