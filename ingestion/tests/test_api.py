"""/api/v1/collections and /api/v1/documents: validation, the no-op duplicate, uploads
(over the general body limit, through the real server), progress, deletion.
Another tenant's key on every route: aiaas/tests/test_authorization_matrix.py."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
import orjson
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import tenant_context
from pytest_django import Settings
from rest_framework.test import APIClient

from aiaas.celery import app
from ingestion import pipeline
from ingestion.models import Chunk, Collection, Document, DocumentSource, StoredFile
from ingestion.tests.factories import make_collection, sample
from realtime.tests.clients import bearer, open_socket, ws_url
from testing.database import committed
from testing.tenants import TenantFixture


def create(api_client: APIClient, **body: object) -> Any:
    return api_client.post(
        "/api/v1/collections", {"name": "docs", "embedding_model": "sim-small", **body}, format="json"
    )


def test_a_collection_is_created_with_its_chunking_and_model(
    api_client: APIClient, tenant: TenantFixture, registry: str
) -> None:
    response = create(
        api_client, chunk_tokens=200, chunk_overlap=20, search_config="simple", metadata={"team": "a"}
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["object"] == "collection"
    assert body["id"].startswith("vs_")
    assert (body["chunk_tokens"], body["chunk_overlap"], body["search_config"]) == (200, 20, "simple")
    assert (body["document_count"], body["metadata"]) == (0, {"team": "a"})


def test_a_collection_is_refused_with_a_clear_error(
    api_client: APIClient, tenant: TenantFixture, registry: str
) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"embedding_model": "no-such-model"}, "embedding_model", "model_not_found"),
        ({"chunk_tokens": 100, "chunk_overlap": 100}, "chunk_overlap", "invalid_value"),
        ({"chunk_tokens": 10}, "chunk_tokens", "invalid_value"),
        ({"search_config": "klingon"}, "search_config", "invalid_value"),
        ({"metadata": {"nested": {"no": 1}}}, "metadata", "invalid_value"),
    ]
    for body, param, code in cases:
        response = create(api_client, **body)

        assert response.status_code == 400, (body, response.content)
        error = response.json()["error"]
        assert (error["param"], error["code"]) == (param, code), error
    with tenant_context(tenant.tenant):
        assert not Collection.objects.exists()


def test_text_is_added_once_and_the_duplicate_answers_200(
    api_client: APIClient, tenant: TenantFixture, registry: str
) -> None:
    collection = create(api_client).json()["id"]
    url = f"/api/v1/collections/{collection}/documents"

    first = api_client.post(url, {"text": "# Notes\n\nhello", "metadata": {"lang": "en"}}, format="json")
    again = api_client.post(url, {"text": "# Notes\n\nhello"}, format="json")

    assert first.status_code == 201, first.content
    assert again.status_code == 200, again.content
    assert again.json()["id"] == first.json()["id"]
    assert first.json()["status"] == "queued"
    assert first.json()["metadata"] == {"lang": "en"}
    listed = api_client.get(url).json()
    assert [d["id"] for d in listed["data"]] == [first.json()["id"]]


def test_documents_are_listed_across_collections_or_for_one(
    api_client: APIClient, tenant: TenantFixture, registry: str
) -> None:
    first, second = create(api_client).json()["id"], create(api_client, name="more").json()["id"]
    added = [
        api_client.post(f"/api/v1/collections/{collection}/documents", {"text": text}, format="json")
        for collection, text in ((first, "one"), (second, "two"), (second, "three"))
    ]
    ids = [response.json()["id"] for response in added]

    every = api_client.get("/api/v1/documents?limit=100").json()
    of_second = api_client.get(f"/api/v1/documents?collection_id={second}").json()
    paged = api_client.get(f"/api/v1/documents?collection_id={second}&limit=1").json()

    assert every["object"] == "list"
    assert set(ids) <= {d["id"] for d in every["data"]}
    assert [d["id"] for d in of_second["data"]] == [ids[2], ids[1]]
    assert {d["collection_id"] for d in of_second["data"]} == {second}
    assert ([d["id"] for d in paged["data"]], paged["has_more"]) == ([ids[2]], True)
    assert api_client.get("/api/v1/documents?collection_id=vs_missing").json()["data"] == []


def test_a_document_needs_exactly_one_source(
    api_client: APIClient, tenant: TenantFixture, registry: str
) -> None:
    collection = create(api_client).json()["id"]
    url = f"/api/v1/collections/{collection}/documents"

    both = api_client.post(url, {"text": "a", "url": "https://example.com/"}, format="json")
    none = api_client.post(url, {"title": "nothing"}, format="json")
    private = api_client.post(url, {"url": "http://127.0.0.1:8000/admin"}, format="json")
    scheme = api_client.post(url, {"url": "file:///etc/passwd"}, format="json")

    assert (both.status_code, both.json()["error"]["code"]) == (400, "invalid_source")
    assert (none.status_code, none.json()["error"]["code"]) == (400, "invalid_source")
    assert (private.status_code, private.json()["error"]["code"]) == (400, "forbidden_url")
    assert (scheme.status_code, scheme.json()["error"]["code"]) == (400, "forbidden_url")


@pytest.mark.parametrize("metadata", ["{nope", "[" * 5000 + "]" * 5000])
def test_upload_metadata_that_is_not_a_json_object_is_a_400(
    api_client: APIClient, registry: str, metadata: str
) -> None:
    collection = create(api_client).json()["id"]
    upload = SimpleUploadedFile("notes.txt", b"hello", content_type="text/plain")

    response = api_client.post(
        f"/api/v1/collections/{collection}/documents",
        {"file": upload, "metadata": metadata},
        format="multipart",
    )

    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == "metadata"


def test_a_file_is_uploaded_ingested_and_deleted_with_its_chunks(
    api_client: APIClient, tenant: TenantFixture, registry: str
) -> None:
    collection = create(api_client).json()["id"]
    upload = SimpleUploadedFile(
        "handbook.docx", sample("handbook.docx"), content_type="application/octet-stream"
    )

    response = api_client.post(
        f"/api/v1/collections/{collection}/documents",
        {"file": upload, "metadata": '{"kind": "hr"}'},
        format="multipart",
    )

    assert response.status_code == 201, response.content
    document = response.json()
    assert (document["source"], document["title"], document["metadata"]) == (
        "upload",
        "handbook.docx",
        {"kind": "hr"},
    )
    with tenant_context(tenant.tenant):
        pipeline.ingest(document["id"])
    detail = api_client.get(f"/api/v1/documents/{document['id']}").json()
    assert detail["status"] == "ready", detail["error"]
    assert detail["chunks_done"] == detail["chunks_total"] == detail["chunk_count"] > 0
    assert api_client.get(f"/api/v1/collections/{collection}").json()["ready_count"] == 1
    assert api_client.post(f"/api/v1/documents/{document['id']}/reingest").json()["status"] == "queued"

    assert api_client.delete(f"/api/v1/documents/{document['id']}").status_code == 204
    with tenant_context(tenant.tenant):
        assert not Chunk.objects.filter(document_id=document["id"]).exists()
        assert StoredFile.objects.filter(documents__isnull=True).count() == 1  # the file stays


def test_an_upload_over_the_file_limit_is_413(
    api_client: APIClient, tenant: TenantFixture, registry: str, settings: Settings
) -> None:
    settings.INGESTION_MAX_FILE_BYTES = 1_000
    collection = create(api_client).json()["id"]
    upload = SimpleUploadedFile("big.txt", b"x" * 1_001, content_type="text/plain")

    response = api_client.post(
        f"/api/v1/collections/{collection}/documents", {"file": upload}, format="multipart"
    )

    assert response.status_code == 413, response.content
    assert response.json()["error"]["code"] == "file_too_large"
    with tenant_context(tenant.tenant):
        assert not StoredFile.objects.exists()


def test_an_upload_over_the_general_body_limit_reaches_the_api(
    platform_url: str, serving_tenant: TenantFixture, settings: Settings
) -> None:
    def write() -> str:
        with tenant_context(serving_tenant.tenant):
            return make_collection(serving_tenant).pk

    collection = committed(write)
    data = b"word " * (settings.MAX_REQUEST_BYTES // 5 + 1000)
    headers = {"Host": "localhost", "Authorization": f"Bearer {serving_tenant.admin_key}"}
    url = f"{platform_url}/api/v1/collections/{collection}/documents"

    uploaded = httpx.post(url, headers=headers, files={"file": ("big.txt", data, "text/plain")}, timeout=30)
    as_json = httpx.post(url, headers=headers, json={"text": data.decode()}, timeout=30)

    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["bytes"] == len(data)
    assert as_json.status_code == 413  # the larger limit is for file uploads only

    def read() -> Document:
        with tenant_context(serving_tenant.tenant):
            return Document.objects.get(pk=uploaded.json()["id"])

    assert committed(read).source == DocumentSource.UPLOAD


def test_a_documents_stream_opens_as_soon_as_it_is_added_with_its_queued_state(
    gateway: str, serving_tenant: TenantFixture, settings: Settings
) -> None:
    """The answer hands out `stream_id` before any worker starts: a client following it
    at once gets the queued state, not a 404 (docs/realtime.md: a stream exists from its
    first event). No worker consumes this queue, so the document stays queued."""
    settings.INGESTION_QUEUE = f"test-ingestion-nobody-{os.getpid()}"
    headers = {**bearer(serving_tenant.admin_key), "Host": settings.BASE_DOMAIN}
    api = gateway.removesuffix("/v1") + "/api/v1"
    collection = httpx.post(f"{api}/collections", json={"name": "live"}, headers=headers, timeout=20)
    added = httpx.post(
        f"{api}/collections/{collection.json()['id']}/documents", json={"text": "hello"}, headers=headers
    )
    document = added.json()

    async def first_event() -> dict[str, Any]:
        url = ws_url(gateway, f"/ws/v1/streams/{document['stream_id']}")
        async with open_socket(url, bearer(serving_tenant.admin_key)) as connection:
            event: dict[str, Any] = orjson.loads(await asyncio.wait_for(connection.recv(), 10))
            return event

    assert added.status_code == 201, added.text
    event = asyncio.run(first_event())
    with app.connection_for_write() as broker:
        broker.default_channel.queue_purge(settings.INGESTION_QUEUE)
    assert event == {
        "type": "ingestion.progress",
        "document_id": document["id"],
        "status": "queued",
        "chunks_done": 0,
        "chunks_total": 0,
        "stream_id": document["stream_id"],
        "seq": 1,
    }
