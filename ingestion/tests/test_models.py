"""The chunk table as migrated into a tenant's schema: vectors of any indexed size, the
HNSW index used for a nearest-neighbour search, and keyword search."""

from __future__ import annotations

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import connection, transaction
from django.db.models import Value
from django_tenants.utils import tenant_context

from ingestion.models import INDEXED_DIMENSIONS, Chunk, Collection, Document
from testing.tenants import TenantFixture


def test_chunks_store_vectors_and_the_hnsw_index_serves_a_search(tenant: TenantFixture) -> None:
    with tenant_context(tenant.tenant):
        check_chunk_table()


def check_chunk_table() -> None:
    collection = Collection.objects.create(name="docs", embedding_model="local-embed", dimensions=256)
    document = Document.objects.create(collection=collection, source="text", text="x", generation=1)
    for position, word in enumerate(["alpha", "beta", "gamma"]):
        vector = [0.0] * 256
        vector[position] = 1.0
        Chunk.objects.create(
            document=document,
            collection=collection,
            generation=1,
            position=position,
            text=f"{word} passage",
            token_count=2,
            embedding=vector,
            dimensions=256,
            search_vector=SearchVector(Value(f"{word} passage"), config="english"),
        )
    probe = "[" + ",".join(["0", "1"] + ["0"] * 254) + "]"
    sql = (
        "SELECT text FROM ingestion_chunk WHERE dimensions = 256 "
        "ORDER BY embedding::vector(256) <=> %s::vector(256) LIMIT 1"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, [probe])
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute(sql, [probe])
        assert cursor.fetchone() == ("beta passage",)
    assert "ingestion_chunk_hnsw_256" in plan
    keyword = Chunk.objects.filter(search_vector=SearchQuery("gamma", config="english"))
    assert [chunk.text for chunk in keyword] == ["gamma passage"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'ingestion_chunk'")
        names = {row[0] for row in cursor.fetchall()}
    assert {f"ingestion_chunk_hnsw_{d}" for d in INDEXED_DIMENSIONS} <= names
