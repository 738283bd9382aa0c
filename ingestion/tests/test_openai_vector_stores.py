"""/v1/vector_stores through the stock `openai` SDK: stores, their files and search."""

from __future__ import annotations

import httpx
import openai
import pytest
from django.conf import settings

from ingestion.tests.factories import sample
from testing.tenants import TenantFixture


def test_a_vector_store_is_created_listed_updated_and_deleted(
    owner: openai.OpenAI, embedding_model: str
) -> None:
    created = owner.vector_stores.create(
        name="handbook",
        metadata={"team": "support"},
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 300, "chunk_overlap_tokens": 50},
        },
    )

    assert created.id.startswith("vs_")
    assert (created.object, created.name, created.status, created.usage_bytes) == (
        "vector_store",
        "handbook",
        "completed",
        0,
    )
    assert created.metadata == {"team": "support"}
    assert created.file_counts.model_dump() == {
        "in_progress": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
        "total": 0,
    }
    assert created.id in [store.id for store in owner.vector_stores.list(limit=100)]
    updated = owner.vector_stores.update(created.id, name="handbook v2", metadata={"team": "sales"})
    assert (updated.name, updated.metadata) == ("handbook v2", {"team": "sales"})
    assert owner.vector_stores.retrieve(created.id).name == "handbook v2"

    deleted = owner.vector_stores.delete(created.id)

    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "vector_store.deleted", True)
    with pytest.raises(openai.NotFoundError):
        owner.vector_stores.retrieve(created.id)


def test_a_files_chunking_must_be_its_vector_stores(
    owner: openai.OpenAI, uploaded: str, embedding_model: str
) -> None:
    store = owner.vector_stores.create(name="chunked")

    with pytest.raises(openai.BadRequestError) as refused:
        owner.vector_stores.files.create(
            store.id,
            file_id=uploaded,
            chunking_strategy={
                "type": "static",
                "static": {"max_chunk_size_tokens": 120, "chunk_overlap_tokens": 10},
            },
        )

    assert refused.value.body["param"] == "chunking_strategy"  # type: ignore[index]
    attached = owner.vector_stores.files.create(store.id, file_id=uploaded, attributes={"lang": "en"})
    assert (attached.id, attached.object, attached.vector_store_id) == (
        uploaded,
        "vector_store.file",
        store.id,
    )
    assert attached.status == "in_progress"
    assert attached.attributes == {"lang": "en"}
    assert attached.chunking_strategy is not None
    assert attached.chunking_strategy.model_dump() == {
        "type": "static",
        "static": {"max_chunk_size_tokens": 400, "chunk_overlap_tokens": 60},
    }
    assert [file.id for file in owner.vector_stores.files.list(store.id)] == [uploaded]
    owner.vector_stores.delete(store.id)


BAD_STORES = [
    ({"name": 5}, "name"),
    ({"metadata": {"k": 1}}, "metadata.k"),
    ({"file_ids": ["file-unknown"]}, "file_ids[0]"),
    ({"file_ids": ["file-\x00"]}, "file_ids"),
    ({"expires_after": {"anchor": "last_active_at", "days": 1}}, "expires_after"),
    (
        {
            "chunking_strategy": {
                "type": "static",
                "static": {"max_chunk_size_tokens": 50, "chunk_overlap_tokens": 0},
            }
        },
        "chunking_strategy.static.max_chunk_size_tokens",
    ),
    (
        {
            "chunking_strategy": {
                "type": "static",
                "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 150},
            }
        },
        "chunking_strategy.static.chunk_overlap_tokens",
    ),
    ({"name": "typo", "chunking_stratgy": {"type": "auto"}}, "chunking_stratgy"),
]


@pytest.mark.parametrize(("body", "param"), BAD_STORES, ids=[param for _, param in BAD_STORES])
def test_bad_vector_stores_are_refused_in_openais_shape(
    platform_url: str, serving_tenant: TenantFixture, body: dict[str, object], param: str
) -> None:
    response = httpx.post(
        f"{platform_url}/v1/vector_stores",
        json=body,
        headers={"Authorization": f"Bearer {serving_tenant.admin_key}", "Host": settings.BASE_DOMAIN},
        timeout=10,
    )

    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"}
    assert response.json()["error"]["param"] == param
    assert response.json()["error"]["type"] == "invalid_request_error"


BAD_FILTERS = [
    ({"type": "gt", "key": "year", "value": 2020}, "filters.type"),
    (
        {
            "type": "or",
            "filters": [{"type": "eq", "key": "a", "value": "x"}, {"type": "eq", "key": "b", "value": "y"}],
        },
        "filters",
    ),
    ({"type": "eq", "key": "a"}, "filters"),
    ("lang = en", "filters"),
]


@pytest.mark.parametrize(
    ("filters", "param"), BAD_FILTERS, ids=["gt", "or across keys", "no value", "a string"]
)
def test_a_filter_that_does_not_fit_is_a_400(
    owner: openai.OpenAI, embedding_model: str, filters: object, param: str
) -> None:
    store = owner.vector_stores.create(name="filtered")

    with pytest.raises(openai.BadRequestError) as refused:
        owner.vector_stores.search(store.id, query="anything", filters=filters)  # type: ignore[arg-type]

    assert refused.value.body["param"] == param  # type: ignore[index]
    assert refused.value.body["code"] == "unsupported_filter"  # type: ignore[index]
    owner.vector_stores.delete(store.id)


def test_upload_and_poll_ends_completed_and_search_finds_the_passage(
    owner: openai.OpenAI, embedding_model: str, ingestion_worker: str
) -> None:
    store = owner.vector_stores.create(name="bakery")

    attached = owner.vector_stores.files.upload_and_poll(
        vector_store_id=store.id,
        file=("recipes.md", sample("recipes.md")),
        attributes={"team": "bakery"},
        poll_interval_ms=200,
        max_wait_seconds=60,
    )

    assert (attached.status, attached.last_error) == ("completed", None)
    assert attached.usage_bytes == len(sample("recipes.md"))
    counted = owner.vector_stores.retrieve(store.id)
    assert (counted.status, counted.usage_bytes) == ("completed", len(sample("recipes.md")))
    assert counted.file_counts.model_dump() == {
        "in_progress": 0,
        "completed": 1,
        "failed": 0,
        "cancelled": 0,
        "total": 1,
    }
    chunks = [
        part.text or "" for part in owner.vector_stores.files.content(attached.id, vector_store_id=store.id)
    ]
    assert any("1000 g of flour" in chunk for chunk in chunks)

    results = owner.vector_stores.search(
        store.id,
        query="how much salt and water go into the dough",
        max_num_results=3,
        filters={"type": "eq", "key": "team", "value": "bakery"},
    )

    assert results.data, "no result"
    best = results.data[0]
    assert (best.file_id, best.filename, best.attributes) == (attached.id, "recipes.md", {"team": "bakery"})
    assert "20 g of salt" in best.content[0].text
    assert 0 < best.score <= 1
    elsewhere = owner.vector_stores.search(
        store.id, query="salt", filters={"type": "eq", "key": "team", "value": "sales"}
    )
    assert elsewhere.data == []

    detached = owner.vector_stores.files.delete(attached.id, vector_store_id=store.id)
    assert (detached.id, detached.deleted) == (attached.id, True)
    assert owner.vector_stores.search(store.id, query="salt").data == []
    assert owner.files.retrieve(attached.id).filename == "recipes.md"
    owner.vector_stores.delete(store.id)
    owner.files.delete(attached.id)


def test_a_file_that_cannot_be_parsed_ends_failed_with_its_error(
    owner: openai.OpenAI, embedding_model: str, ingestion_worker: str
) -> None:
    store = owner.vector_stores.create(name="broken")

    attached = owner.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("manual.pdf", sample("corrupt.pdf")), max_wait_seconds=60
    )

    assert attached.status == "failed"
    assert attached.last_error is not None
    assert attached.last_error.code == "invalid_file"
    assert "PDF" in attached.last_error.message
    assert owner.vector_stores.retrieve(store.id).file_counts.failed == 1
    owner.vector_stores.delete(store.id)
