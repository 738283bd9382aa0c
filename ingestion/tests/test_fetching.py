"""URL sources from a local HTTP server: ingested through the SSRF guard, robots.txt
honoured, content types and redirects checked."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django_tenants.utils import tenant_context
from pytest_django import Settings

from ingestion import pipeline, services
from ingestion.models import DocumentStatus
from ingestion.tests.factories import key_id, make_collection, sample
from testing.servers import LOOPBACK_SERVER_PORTS
from testing.tenants import TenantFixture

ROBOTS = b"User-agent: *\nDisallow: /private/\n"
PAGES: dict[str, tuple[str, bytes]] = {
    "/robots.txt": ("text/plain", ROBOTS),
    "/guide.html": ("text/html; charset=utf-8", sample("guide.html")),
    "/manual.pdf": ("application/pdf", sample("manual.pdf")),
    "/private/secret.html": ("text/html", b"<html><body><p>secret</p></body></html>"),
    "/image.png": ("image/png", sample("image.bin")),
}


class Site(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/guide.html")
            self.end_headers()
            return
        if self.path not in PAGES:
            self.send_response(404)
            self.end_headers()
            return
        content_type, body = PAGES[self.path]
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def allowed_site(site: str, settings: Settings) -> str:
    settings.INGESTION_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.OUTBOUND_DEFAULT_PORTS = LOOPBACK_SERVER_PORTS
    return site


def ingest_url(tenant: TenantFixture, url: str) -> tuple[str, str, list[tuple[str, int | None]]]:
    with tenant_context(tenant.tenant):
        document, _ = services.add_url(make_collection(tenant), url=url, api_key_id=key_id(tenant))
        pipeline.ingest(document.pk)
        document.refresh_from_db()
        chunks = list(document.chunks.order_by("position").values_list("heading", "page"))
        return document.status, document.error or document.title, chunks


def test_a_page_is_fetched_and_its_main_content_ingested(
    tenant: TenantFixture, registry: str, allowed_site: str
) -> None:
    status, title, chunks = ingest_url(tenant, f"{allowed_site}/moved")

    assert (status, title) == (DocumentStatus.READY, "Installing the garden irrigation kit")
    assert [heading for heading, _ in chunks] == [
        "Installing the garden irrigation kit",
        "Installing the garden irrigation kit > Laying the main hose",
        "Installing the garden irrigation kit > Fitting the drippers",
        "Installing the garden irrigation kit > Fitting the drippers > Adjusting the flow",
    ]


def test_a_pdf_url_keeps_its_pages(tenant: TenantFixture, registry: str, allowed_site: str) -> None:
    status, _, chunks = ingest_url(tenant, f"{allowed_site}/manual.pdf")

    assert status == DocumentStatus.READY
    assert [page for _, page in chunks] == [1, 2, 3]


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/private/secret.html", "is disallowed by the site's robots.txt"),
        ("/image.png", "has content type image/png, which cannot be ingested"),
        ("/missing", "answered HTTP 404"),
    ],
)
def test_a_url_that_cannot_be_ingested_fails_its_document(
    tenant: TenantFixture, registry: str, allowed_site: str, path: str, error: str
) -> None:
    status, message, chunks = ingest_url(tenant, f"{allowed_site}{path}")

    assert status == DocumentStatus.FAILED
    assert error in message, message
    assert chunks == []


def test_the_guard_refuses_a_loopback_host_that_is_not_allowed(
    tenant: TenantFixture, registry: str, site: str, settings: Settings
) -> None:
    settings.INGESTION_ALLOWED_HOSTS = []
    settings.OUTBOUND_DEFAULT_PORTS = LOOPBACK_SERVER_PORTS
    with (
        tenant_context(tenant.tenant),
        pytest.raises(services.IngestionInputError, match="not a public address"),
    ):
        services.add_url(make_collection(tenant), url=f"{site}/guide.html", api_key_id=key_id(tenant))
    settings.INGESTION_ALLOWED_HOSTS = ["localhost"]

    status, message, _ = ingest_url(tenant, site.replace("127.0.0.1", "localhost") + "/guide.html")

    assert status == DocumentStatus.READY, message
    settings.INGESTION_ALLOWED_HOSTS = []
    status, message, _ = ingest_url(tenant, site.replace("127.0.0.1", "localhost") + "/manual.pdf")
    assert status == DocumentStatus.FAILED
    assert "refused target: localhost resolves to a non-public address (127.0.0.1)" in message, message
