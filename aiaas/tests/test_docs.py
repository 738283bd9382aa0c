"""Swagger UI at /api/docs/: public, and whole without the internet (drf-spectacular-sidecar's
files served by us, no CDN)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from django.conf import settings
from django.test import Client

ASSET = re.compile(r'(?:src|href)="([^"]*)"')
SIDECAR = f"{settings.STATIC_URL}drf_spectacular_sidecar/swagger-ui-dist/"


def swagger_ui() -> str:
    response = Client(HTTP_HOST=settings.BASE_DOMAIN).get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    return response.content.decode()


def test_swagger_ui_refers_only_to_our_own_files(db: None) -> None:
    html = swagger_ui()

    assert sorted(ASSET.findall(html)) == [
        f"{SIDECAR}favicon-32x32.png",
        f"{SIDECAR}swagger-ui-bundle.js",
        f"{SIDECAR}swagger-ui-standalone-preset.js",
        f"{SIDECAR}swagger-ui.css",
    ]
    assert re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}", html) == []


def test_the_swagger_ui_files_are_served(db: None) -> None:
    client = Client(HTTP_HOST=settings.BASE_DOMAIN)
    for url in ASSET.findall(swagger_ui()):
        response = client.get(url)

        assert response.status_code == 200, url
        # Reading to the end closes the file (the test client wraps the stream).
        content = b"".join(response.streaming_content)  # type: ignore[attr-defined]
        assert content, url


def test_swagger_ui_loads_the_committed_document(db: None) -> None:
    html = swagger_ui()
    schema = Client(HTTP_HOST=settings.BASE_DOMAIN).get("/api/schema/", HTTP_ACCEPT="application/json")

    assert '"/api/schema/"' in html
    assert schema.status_code == 200
    committed = yaml.safe_load((Path(settings.BASE_DIR) / "docs" / "openapi.yaml").read_text())
    assert schema.json() == committed
