"""Search over chunks inserted directly: each mode's ranking, the fusion, filters,
visibility (generations, document status), the HNSW index, and the endpoint."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from django.contrib.postgres.search import SearchVector
from django.db import connection, transaction
from django.db.models import Value
from django_tenants.utils import tenant_context

from gateway.simulated.provider import embed
from ingestion.models import Chunk, Collection, Document, DocumentStatus
from ingestion.runtime import close_runtime
from ingestion.search import (
    RRF_K,
    Filters,
    SearchInputError,
    SearchMode,
    fetch_hits,
    parse_filters,
    search,
    search_statement,
    vector_literal,
)
from tenants.models import ApiKey, ApiKeyScope
from tenants.selectors import find_usable_api_key
from tenants.services import create_api_key
from testing.tenants import TenantFixture

SIMULATED_DIMENSIONS = 64


@pytest.fixture(scope="module")
def embeddings(platform_url: str) -> Iterator[None]:
    """The simulated provider registered (sim-small embeds the query); this thread's
    runtime closed afterwards. (platform_url's teardown ends the database sessions
    of the gateway's threads.)"""
    yield
    close_runtime()


def key_of(tenant: TenantFixture) -> ApiKey:
    api_key = find_usable_api_key(tenant.admin_key)
    assert api_key is not None
    return api_key


def make_collection(dimensions: int = SIMULATED_DIMENSIONS) -> Collection:
    return Collection.objects.create(name="docs", embedding_model="sim-small", dimensions=dimensions)


def make_document(
    collection: Collection,
    *,
    generation: int = 1,
    status: str = DocumentStatus.READY,
    metadata: dict[str, Any] | None = None,
    title: str = "A document",
) -> Document:
    return Document.objects.create(
        collection=collection,
        source="text",
        title=title,
        status=status,
        generation=generation,
        metadata=metadata or {},
    )


def add_chunk(
    document: Document,
    text: str,
    vector: Sequence[float] | None = None,
    *,
    position: int = 0,
    generation: int | None = None,
) -> Chunk:
    """A chunk as ingestion stores it; its vector is the simulated model's for `text`
    unless given (so a query equal to the text is nearest to it)."""
    collection = document.collection
    assert collection.dimensions is not None
    return Chunk.objects.create(
        document=document,
        collection=collection,
        generation=document.generation if generation is None else generation,
        position=position,
        text=text,
        token_count=len(text.split()),
        embedding=list(vector if vector is not None else embed(text, collection.dimensions)),
        dimensions=collection.dimensions,
        search_vector=SearchVector(Value(text), config="english"),
    )


def near(vector: Sequence[float], noise: float, seed: int) -> list[float]:
    generator = random.Random(seed)
    moved = [component + generator.gauss(0.0, noise) for component in vector]
    norm = math.hypot(*moved)
    return [component / norm for component in moved]


def texts(collection: Collection, query: str, mode: SearchMode, api_key: ApiKey, **options: Any) -> list[str]:
    return [hit.text for hit in search(collection, query, mode=mode, api_key=api_key, **options).hits]


def test_keyword_search_ranks_the_passage_with_the_words_first(tenant: TenantFixture) -> None:
    api_key = key_of(tenant)
    with tenant_context(tenant.tenant):
        collection = make_collection()
        document = make_document(collection)
        add_chunk(document, "Invoices are sent on the first day of each month.", position=0)
        add_chunk(document, "Refunds of an invoice take five business days.", position=1)
        add_chunk(document, "The office closes at six.", position=2)

        result = search(collection, "refund invoice", mode="keyword", api_key=api_key)

    assert [hit.text for hit in result.hits] == ["Refunds of an invoice take five business days."]
    hit = result.hits[0]
    assert (hit.keyword_rank, hit.vector_rank, hit.vector_score) == (1, None, None)
    assert hit.score == hit.keyword_score
    assert hit.score > 0
    assert (hit.document_id, hit.document_title, hit.position) == (document.id, "A document", 1)
    assert (result.usage.prompt_tokens, result.usage.request_id) == (0, None)


def test_vector_search_ranks_the_nearest_chunk_first(tenant: TenantFixture, embeddings: None) -> None:
    api_key = key_of(tenant)
    with tenant_context(tenant.tenant):
        collection = make_collection()
        document = make_document(collection)
        for position, text in enumerate(["how to reset a password", "opening hours", "shipping costs"]):
            add_chunk(document, text, position=position)

        result = search(collection, "opening hours", mode="vector", api_key=api_key)

    assert [hit.text for hit in result.hits[:1]] == ["opening hours"]
    assert len(result.hits) == 3
    assert result.hits[0].vector_score == pytest.approx(1.0, abs=1e-5)
    assert [hit.vector_rank for hit in result.hits] == [1, 2, 3]
    assert result.usage.model == "sim-small"
    assert result.usage.prompt_tokens > 0


def test_hybrid_fuses_the_ranks_of_both_lists(tenant: TenantFixture, embeddings: None) -> None:
    api_key = key_of(tenant)
    query = "solar panels"
    query_vector = embed(query, SIMULATED_DIMENSIONS)
    with tenant_context(tenant.tenant):
        collection = make_collection()
        document = make_document(collection)
        add_chunk(document, "Solar panels on the roof.", query_vector, position=0)
        add_chunk(document, "Wind turbines on the hill.", near(query_vector, 0.05, 1), position=1)
        add_chunk(document, "Cleaning solar panels twice a year.", embed("other", 64), position=2)
        add_chunk(document, "Batteries store the power.", embed("more", 64), position=3)

        vector = texts(collection, query, SearchMode.VECTOR, api_key)
        result = search(collection, query, api_key=api_key)

    hybrid = [hit.text for hit in result.hits]
    assert vector[:2] == ["Solar panels on the roof.", "Wind turbines on the hill."]
    assert hybrid[:3] == [
        "Solar panels on the roof.",
        "Cleaning solar panels twice a year.",
        "Wind turbines on the hill.",
    ]
    for hit in result.hits:
        keyword = 1 / (RRF_K + hit.keyword_rank) if hit.keyword_rank else 0.0
        assert hit.vector_rank is not None
        assert hit.score == pytest.approx(1 / (RRF_K + hit.vector_rank) + keyword)
    assert result.mode == SearchMode.HYBRID


def test_filters_match_document_metadata_and_ids(tenant: TenantFixture) -> None:
    api_key = key_of(tenant)
    with tenant_context(tenant.tenant):
        collection = make_collection()
        english = make_document(collection, metadata={"lang": "en", "tag": "guide", "version": 2})
        french = make_document(collection, metadata={"lang": "fr", "tag": "faq"})
        other = make_document(collection, metadata={"lang": "en", "tag": "news"})
        for document, text in [(english, "billing guide"), (french, "billing faq"), (other, "billing news")]:
            add_chunk(document, text)

        def found(filters: dict[str, Any] | None = None, document_ids: list[str] | None = None) -> set[str]:
            options = {"filters": filters, "document_ids": document_ids}
            return set(texts(collection, "billing", SearchMode.KEYWORD, api_key, **options))

        assert found() == {"billing guide", "billing faq", "billing news"}
        assert found({"lang": "en"}) == {"billing guide", "billing news"}
        assert found({"lang": "en", "version": 2}) == {"billing guide"}
        assert found({"tag": {"$in": ["faq", "news"]}}) == {"billing faq", "billing news"}
        assert found({"lang": "en", "tag": {"$in": ["faq", "news"]}}) == {"billing news"}
        assert found({"lang": "de"}) == set()
        assert found(document_ids=[french.id, other.id]) == {"billing faq", "billing news"}
        assert found({"lang": "en"}, document_ids=[french.id]) == set()


def test_filters_are_validated() -> None:
    assert parse_filters({"lang": "en", "tag": {"$in": ["a", 1, None]}}) == Filters(
        {"lang": "en"}, {"tag": ("a", 1, None)}
    )
    refused: list[tuple[dict[str, Any], str, str]] = [
        ({"tag": {"$nin": ["a"]}}, "filters.tag", "Unknown filter operator ($nin)"),
        ({"tag": {"$in": []}}, "filters.tag", "`$in` takes a list"),
        ({"tag": {"$in": "a"}}, "filters.tag", "`$in` takes a list"),
        ({"tag": ["a"]}, "filters.tag", "A filter value must be a string, number, boolean or null"),
        ({"$or": [{"a": 1}]}, "filters", "`$or` is not a metadata key"),
    ]
    for filters, param, message in refused:
        with pytest.raises(SearchInputError) as error:
            parse_filters(filters)
        assert (error.value.param, error.value.message[: len(message)]) == (param, message)


def test_old_generations_and_documents_not_ready_are_invisible(tenant: TenantFixture) -> None:
    api_key = key_of(tenant)
    with tenant_context(tenant.tenant):
        collection = make_collection()
        replaced = make_document(collection, generation=2)
        add_chunk(replaced, "tariff of the old version", generation=1)
        add_chunk(replaced, "tariff of the new version", generation=2)
        add_chunk(replaced, "tariff of a version being written", generation=3)
        for status in (DocumentStatus.QUEUED, DocumentStatus.PROCESSING, DocumentStatus.FAILED):
            add_chunk(make_document(collection, status=status), f"tariff of a {status} document")

        found = texts(collection, "tariff", SearchMode.KEYWORD, api_key)

    assert found == ["tariff of the new version"]


def test_a_search_sees_only_its_collection(tenant: TenantFixture) -> None:
    api_key = key_of(tenant)
    with tenant_context(tenant.tenant):
        mine, theirs = make_collection(), make_collection()
        add_chunk(make_document(mine), "pricing of mine")
        add_chunk(make_document(theirs), "pricing of theirs")

        assert texts(mine, "pricing", SearchMode.KEYWORD, api_key) == ["pricing of mine"]


def test_a_reranker_reorders_the_candidates_before_the_cut(tenant: TenantFixture) -> None:
    api_key = key_of(tenant)
    seen: list[int] = []

    def reverse(query: str, hits: list[Any]) -> list[Any]:
        seen.append(len(hits))
        return list(reversed(hits))

    with tenant_context(tenant.tenant):
        collection = make_collection()
        document = make_document(collection)
        for position in range(5):
            add_chunk(document, "delivery " * (5 - position) + f"note {position}", position=position)

        found = texts(collection, "delivery", SearchMode.KEYWORD, api_key, top_k=2, rerank=reverse)

    assert seen == [5]
    assert found == ["delivery note 4", "delivery delivery note 3"]


def test_vector_and_hybrid_searches_use_the_hnsw_index(tenant: TenantFixture) -> None:
    with tenant_context(tenant.tenant):
        collection = make_collection(dimensions=256)
        document = make_document(collection)
        for position in range(3):
            vector = [0.0] * 256
            vector[position] = 1.0
            add_chunk(document, f"passage {position}", vector, position=position)
        probe = [0.0] * 256
        probe[1] = 1.0
        params: dict[str, Any] = {
            "collection": collection.id,
            "vector": vector_literal(probe),
            "config": "english",
            "query": "passage 1",
            "candidates": 40,
            "limit": 10,
        }
        plans = {}
        for mode in SearchMode:
            sql, filter_params = search_statement(mode, 256, Filters())
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL enable_seqscan = off")
                cursor.execute("EXPLAIN " + sql, params | filter_params)
                plans[mode] = "\n".join(row[0] for row in cursor.fetchall())
                cursor.execute(sql, params | filter_params)
                first = cursor.fetchone()
            assert first is not None
            assert first[3] == "passage 1"

    assert "ingestion_chunk_hnsw_256" in plans[SearchMode.VECTOR]
    assert "ingestion_chunk_hnsw_256" in plans[SearchMode.HYBRID]


def search_url(collection_id: str) -> str:
    return f"/api/v1/collections/{collection_id}/search"


def test_the_endpoint_answers_a_list_of_hits(tenant: TenantFixture, embeddings: None) -> None:
    with tenant_context(tenant.tenant):
        collection = make_collection()
        document = make_document(collection, metadata={"lang": "en"}, title="Handbook")
        add_chunk(document, "parking permits for staff")
        add_chunk(document, "holiday calendar", position=1)

    response = tenant.api_client().post(
        search_url(collection.id),
        {"query": "parking permits for staff", "top_k": 1, "filters": {"lang": "en"}},
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["object"], body["mode"]) == ("list", "hybrid")
    assert body["usage"]["model"] == "sim-small"
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    [hit] = body["data"]
    assert hit["text"] == "parking permits for staff"
    assert (hit["document_id"], hit["document_title"], hit["position"]) == (document.id, "Handbook", 0)
    assert (hit["vector_rank"], hit["keyword_rank"]) == (1, 1)
    assert hit["score"] == pytest.approx(2 / (RRF_K + 1))
    assert set(hit) == {
        "document_id",
        "document_title",
        "chunk_id",
        "text",
        "position",
        "heading",
        "page",
        "score",
        "vector_rank",
        "vector_score",
        "keyword_rank",
        "keyword_score",
    }


def test_another_tenants_key_gets_404(tenant: TenantFixture, other_tenant: TenantFixture) -> None:
    with tenant_context(tenant.tenant):
        collection = make_collection()
        add_chunk(make_document(collection), "secret plans")

    foreign = other_tenant.api_client().post(
        search_url(collection.id), {"query": "secret", "mode": "keyword"}, format="json"
    )
    missing = other_tenant.api_client().post(
        search_url("vs_missing"), {"query": "secret", "mode": "keyword"}, format="json"
    )

    assert foreign.status_code == 404
    assert foreign.content == missing.content


def test_a_key_without_the_read_scope_is_refused(tenant: TenantFixture) -> None:
    issued = create_api_key(tenant.tenant, name="inference only", scopes=[ApiKeyScope.INFERENCE])
    with tenant_context(tenant.tenant):
        collection = make_collection()

    response = tenant.api_client(issued.secret).post(
        search_url(collection.id), {"query": "x", "mode": "keyword"}, format="json"
    )

    assert response.status_code == 403


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "query"),
        ({"query": ""}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "x" * 4001}, "query"),
        ({"query": "x", "top_k": 0}, "top_k"),
        ({"query": "x", "top_k": 101}, "top_k"),
        ({"query": "x", "mode": "semantic"}, "mode"),
        ({"query": "x", "filters": ["lang"]}, "filters"),
        ({"query": "x", "filters": {"lang": {"$regex": "e"}}}, "filters.lang"),
        ({"query": "x", "filters": {"lang": {"$in": "en"}}}, "filters.lang"),
        ({"query": "x", "document_ids": "doc_1"}, "document_ids"),
        ({"query": "x", "rerank": True}, "rerank"),
    ],
)
def test_bad_input_gets_a_400_naming_the_field(
    tenant: TenantFixture, body: dict[str, Any], param: str
) -> None:
    with tenant_context(tenant.tenant):
        collection = make_collection()

    response = tenant.api_client().post(search_url(collection.id), body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == param


def test_a_collection_crowded_out_of_the_index_is_searched_exactly(tenant: TenantFixture) -> None:
    """The HNSW index is shared by the tenant's collections of one size: when its
    nearest neighbours belong to another collection, the search scans exactly."""
    query_vector = [1.0] + [0.0] * 255
    with tenant_context(tenant.tenant):
        small, crowd = make_collection(dimensions=256), make_collection(dimensions=256)
        for position in range(5):
            add_chunk(
                make_document(small), f"small {position}", near([0.0, 1.0] + [0.0] * 254, 0.1, position)
            )
        crowd_document = make_document(crowd)
        for position in range(300):
            add_chunk(
                crowd_document, f"crowd {position}", near(query_vector, 0.1, position), position=position
            )
        with connection.cursor() as cursor:  # as the planner chooses at scale: the index
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_sort = off")

        hits = fetch_hits(small, SearchMode.VECTOR, "report", query_vector, Filters(), top_k=10, limit=10)

    assert sorted(hit.text for hit in hits) == [f"small {position}" for position in range(5)]
