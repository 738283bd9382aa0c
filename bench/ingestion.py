"""Ingestion and retrieval: throughput, search latency at size, retrieval quality.

    python bench/ingestion.py [--sizes 10000,100000] [--searches 200] [--quick] [--json PATH]

Needs DATABASE_URL, REDIS_URL and SECRET_KEY (run it under
`python -m aiaas.launcher exec --`, or `make bench-ingestion`). One bench
tenant (limits checked, never binding), removed at the end; the local
embedding model `local-embed` (wordllama, in process) throughout.

1. Ingestion: the 497 documents of bench/data/retrieval/corpus.jsonl added
   through `ingestion.services.add_text`, each ingested by the Celery task on a
   real solo worker (a thread of this process, on the Redis broker, a queue of
   its own): parsing, chunking, embedding through the in-process gateway,
   storing. Documents and chunks per second, from the first add to the last
   document `ready`.
2. Quality: the 117 hand-written queries of queries.jsonl against that
   collection, in each mode: recall@10 (the share of a query's relevant
   documents among the documents of its first 10 hits) and MRR (1 / rank of
   the first relevant hit, 0 beyond 10), averaged over queries.
3. Latency: a second collection in the same tenant filled to each size with
   synthetic chunks (sentences drawn from the corpus's word frequencies,
   embedded by the same model, inserted in batches), then --searches queries
   per mode through `ingestion.search.search`: the query's embedding (through
   the gateway) and the SQL (one statement) timed apart, p50/p95; and the
   hybrid statement's EXPLAIN ANALYZE execution time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import re
import sys
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from celery.exceptions import CDeprecationWarning

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.db_connections import print_rows  # noqa: E402
from bench.gateway import (  # noqa: E402
    TENANT_PREFIX,
    percentile,
    provision_bench_tenant,
    remove_bench_tenants,
    setup_django,
)

DATA = REPO_ROOT / "bench" / "data" / "retrieval"
DEFAULT_JSON_PATH = REPO_ROOT / "bench" / "results" / "ingestion.json"
EMBEDDING_MODEL = "local-embed"
DIMENSIONS = 256
MODES = ("hybrid", "vector", "keyword")
INSERT_BATCH = 1000
CHUNKS_PER_DOCUMENT = 20
INGESTION_TIMEOUT_SECONDS = 1800
LONG_DOCUMENTS = 10
LONG_DOCUMENT_PARAGRAPHS = 200
# Chunks as the pipeline stores them (ingestion/pipeline.py), of DIMENSIONS dimensions.
INSERT_CHUNK = (
    "INSERT INTO ingestion_chunk (document_id, collection_id, generation, position, text, heading, "
    "token_count, embedding, dimensions, search_vector) "
    "VALUES (%s, %s, 1, %s, %s, '', %s, %s::vector, 256, to_tsvector('english', %s))"
)


def load_jsonl(name: str) -> list[dict[str, Any]]:
    with (DATA / name).open() as lines:
        return [json.loads(line) for line in lines]


# 1. Ingestion through the pipeline


@contextmanager
def ingestion_worker() -> Iterator[None]:
    """A solo Celery worker thread consuming an ingestion queue of this run's own."""
    from celery.contrib.testing.worker import start_worker
    from django.test import override_settings

    logging.getLogger("celery").setLevel(logging.WARNING)  # not a line per task
    warnings.simplefilter("ignore", CDeprecationWarning)

    from aiaas.celery import app

    queue = f"bench-ingestion-{os.getpid()}"
    with (
        override_settings(INGESTION_QUEUE=queue),
        start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30, queues=[queue]),
    ):
        yield


def bench_ingestion(
    api_key_id: int, name: str, documents: list[tuple[str, str, dict[str, Any]]]
) -> tuple[Any, dict[str, Any]]:
    """Add (title, text, metadata) documents to a new collection and wait until every
    one is ready or failed."""
    from ingestion import services
    from ingestion.models import Chunk, Document, DocumentStatus

    collection = services.create_collection(name=name, embedding_model=EMBEDDING_MODEL, api_key_id=api_key_id)
    started = time.perf_counter()
    with ingestion_worker():
        for title, text, metadata in documents:
            services.add_text(collection, text=text, title=title, metadata=metadata, api_key_id=api_key_id)
        deadline = time.monotonic() + INGESTION_TIMEOUT_SECONDS
        added = Document.objects.filter(collection=collection)
        while added.exclude(status__in=[DocumentStatus.READY, DocumentStatus.FAILED]).exists():
            if time.monotonic() > deadline:
                raise RuntimeError("ingestion did not finish in time")
            time.sleep(0.2)
    seconds = time.perf_counter() - started
    collection.refresh_from_db()  # the first embedding set its dimensions
    chunks = Chunk.objects.filter(collection=collection).count()
    return collection, {
        "documents": len(documents),
        "failed": added.filter(status=DocumentStatus.FAILED).count(),
        "chunks": chunks,
        "seconds": seconds,
        "documents_per_second": len(documents) / seconds,
        "chunks_per_second": chunks / seconds,
    }


def corpus_documents(corpus: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (entry["id"], entry["text"], {"corpus_id": entry["id"], "module": entry["id"].rsplit(".", 1)[0]})
        for entry in corpus
    ]


def long_documents(maker: SentenceMaker, count: int) -> list[tuple[str, str, dict[str, Any]]]:
    """Documents of LONG_DOCUMENT_PARAGRAPHS paragraphs: many chunks each."""
    return [
        (f"long {number}", "\n\n".join(maker.chunk() for _ in range(LONG_DOCUMENT_PARAGRAPHS)), {})
        for number in range(count)
    ]


# 2. Retrieval quality


def bench_quality(collection: Any, api_key: Any, queries: list[dict[str, Any]]) -> dict[str, Any]:
    from ingestion.models import Document
    from ingestion.search import search

    corpus_ids = {
        document.pk: document.metadata["corpus_id"]
        for document in Document.objects.filter(collection=collection)
    }
    results: dict[str, Any] = {}
    for mode in MODES:
        recalls, reciprocal_ranks = [], []
        for query in queries:
            hits = search(collection, query["query"], top_k=10, mode=mode, api_key=api_key).hits
            found = [corpus_ids[hit.document_id] for hit in hits]
            relevant = set(query["relevant"])
            recalls.append(len(relevant & set(found)) / len(relevant))
            first = next((rank for rank, found_id in enumerate(found, 1) if found_id in relevant), None)
            reciprocal_ranks.append(1 / first if first else 0.0)
        results[mode] = {
            "recall_at_10": sum(recalls) / len(recalls),
            "mrr": sum(reciprocal_ranks) / len(reciprocal_ranks),
        }
    return {"queries": len(queries), "modes": results}


# 3. Latency at size


class SentenceMaker:
    """Sentences of words drawn from the corpus's own word frequencies (Zipf-like,
    as real text), so keyword matches and vectors look like a real collection's."""

    def __init__(self, corpus: list[dict[str, Any]], seed: int) -> None:
        counts = Counter(word for entry in corpus for word in re.findall(r"[a-z]{2,}", entry["text"].lower()))
        self.words = list(counts)
        self.weights = list(counts.values())
        self.random = random.Random(seed)

    def chunk(self) -> str:
        sentences = []
        for _ in range(self.random.randint(3, 8)):
            words = self.random.choices(self.words, self.weights, k=self.random.randint(8, 20))
            sentences.append(" ".join(words).capitalize() + ".")
        return " ".join(sentences)


def embed_locally(texts: list[str]) -> list[list[float]]:
    """The local model's vectors, computed here rather than through the gateway: the
    same model and weights, without a hundred thousand metered requests."""
    from gateway.providers.local import WORDLLAMA_L2_SUPERCAT, local_model
    from gateway.resilience import Deadline

    embedded = local_model(WORDLLAMA_L2_SUPERCAT).embed(texts, DIMENSIONS, 512, Deadline(600))
    return [[float(value) for value in row] for row in embedded.vectors]


def fill(collection: Any, maker: SentenceMaker, target: int) -> float:
    """Add documents of CHUNKS_PER_DOCUMENT ready chunks until the collection has
    `target` chunks; the seconds it took."""
    from django.db import connection

    from ingestion.models import Chunk, Document, DocumentSource, DocumentStatus

    started = time.perf_counter()
    count = Chunk.objects.filter(collection=collection).count()
    while count < target:
        batch = min(INSERT_BATCH, target - count)
        texts = [maker.chunk() for _ in range(batch)]
        vectors = embed_locally(texts)
        documents = Document.objects.bulk_create(
            Document(
                collection=collection,
                source=DocumentSource.TEXT,
                title=f"synthetic {count + start}",
                status=DocumentStatus.READY,
                generation=1,
                metadata={"lang": "en"},
            )
            for start in range(0, batch, CHUNKS_PER_DOCUMENT)
        )
        rows = [
            (
                documents[index // CHUNKS_PER_DOCUMENT].pk,
                collection.pk,
                index % CHUNKS_PER_DOCUMENT,
                text,
                len(text.split()),
                "[" + ",".join(f"{value:.6f}" for value in vector) + "]",
                text,
            )
            for index, (text, vector) in enumerate(zip(texts, vectors, strict=True))
        ]
        with connection.cursor() as cursor:
            cursor.executemany(INSERT_CHUNK, rows)
        count += batch
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE ingestion_chunk")
        cursor.execute("ANALYZE ingestion_document")
    return time.perf_counter() - started


def bench_latency(collection: Any, api_key: Any, queries: list[str], searches: int) -> dict[str, Any]:
    from ingestion.search import search

    for query in queries[:20]:  # warm the caches, the model and the connection pools
        search(collection, query, mode="hybrid", api_key=api_key)
    results: dict[str, Any] = {}
    for mode in MODES:
        embedding, sql, total = [], [], []
        for index in range(searches):
            started = time.perf_counter()
            result = search(collection, queries[index % len(queries)], mode=mode, api_key=api_key)
            total.append((time.perf_counter() - started) * 1000)
            embedding.append(result.embedding_ms)
            sql.append(result.sql_ms)
        results[mode] = {
            name: summary(values)
            for name, values in (("embedding_ms", embedding), ("sql_ms", sql), ("total_ms", total))
        }
    results["explain_hybrid_ms"] = explain_hybrid(collection, api_key, queries[0])
    return results


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": percentile(ordered, 50), "p95": percentile(ordered, 95)}


def explain_hybrid(collection: Any, api_key: Any, query: str) -> dict[str, Any]:
    """Planning and execution time of one hybrid statement, as PostgreSQL measures them,
    and whether the plan uses the HNSW and full-text indexes."""
    from django.db import connection, transaction

    from ingestion.search import (
        Filters,
        SearchMode,
        candidate_count,
        ef_search,
        embed_query,
        search_statement,
        vector_literal,
    )

    vector, _ = embed_query(collection, query, api_key)
    sql, params = search_statement(SearchMode.HYBRID, DIMENSIONS, Filters())
    params |= {
        "collection": collection.pk,
        "vector": vector_literal(vector),
        "config": collection.search_config,
        "query": query,
        "candidates": candidate_count(10),
        "limit": 10,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL hnsw.ef_search = {ef_search(candidate_count(10))}")
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0][0]
    text = json.dumps(plan)
    return {
        "planning_ms": plan["Planning Time"],
        "execution_ms": plan["Execution Time"],
        "uses_hnsw": f"ingestion_chunk_hnsw_{DIMENSIONS}" in text,
        "uses_gin": "ingestion_chunk_search" in text,
    }


# The run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="chunk counts of the latency collection")
    parser.add_argument("--searches", type=int, default=200, help="measured searches per mode and size")
    parser.add_argument("--quick", action="store_true", help="sizes 2000,10000 and 50 searches")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON_PATH)
    args = parser.parse_args()
    sizes = [2000, 10000] if args.quick else [int(size) for size in args.sizes.split(",")]
    searches = 50 if args.quick else args.searches
    setup_django()
    from django.core.management import call_command
    from django_tenants.utils import tenant_context

    from ingestion.runtime import close_runtime
    from tenants.models import Tenant
    from tenants.selectors import find_usable_api_key

    call_command("bootstrap", verbosity=0)  # registers local-embed
    remove_bench_tenants()
    corpus, queries = load_jsonl("corpus.jsonl"), load_jsonl("queries.jsonl")
    slug = f"{TENANT_PREFIX}ingest-{uuid.uuid4().hex[:6]}"
    secret = provision_bench_tenant(slug)
    api_key = find_usable_api_key(secret)
    assert api_key is not None
    report: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "embedding_model": EMBEDDING_MODEL,
    }
    try:
        with tenant_context(Tenant.objects.get(slug=slug)):
            collection, short = bench_ingestion(api_key.pk, "bench corpus", corpus_documents(corpus))
            _, long = bench_ingestion(
                api_key.pk, "bench long", long_documents(SentenceMaker(corpus, 7), LONG_DOCUMENTS)
            )
            report["ingestion"] = {"corpus": short, "long": long}
            print_ingestion(report["ingestion"])
            report["quality"] = bench_quality(collection, api_key, queries)
            print_quality(report["quality"])
            report["latency"] = bench_sizes(api_key, corpus, [q["query"] for q in queries], sizes, searches)
    finally:
        close_runtime()
        remove_bench_tenants()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.json}")


def bench_sizes(
    api_key: Any, corpus: list[dict[str, Any]], queries: list[str], sizes: list[int], searches: int
) -> list[dict[str, Any]]:
    from ingestion.models import Collection

    collection = Collection.objects.create(
        name="bench synthetic", embedding_model=EMBEDDING_MODEL, dimensions=DIMENSIONS, api_key_id=api_key.pk
    )
    maker = SentenceMaker(corpus, seed=14)
    measured = []
    for size in sorted(sizes):
        fill_seconds = fill(collection, maker, size)
        result = {
            "chunks": size,
            "fill_seconds": fill_seconds,
            **bench_latency(collection, api_key, queries, searches),
        }
        print_latency(result)
        measured.append(result)
    return measured


def print_ingestion(results: dict[str, dict[str, Any]]) -> None:
    print("ingestion: add_text + ingest_document on one solo worker, local-embed, until ready")
    columns = ("documents", "failed", "chunks", "seconds", "docs/s", "chunks/s")
    keys = ("documents", "failed", "chunks", "seconds", "documents_per_second", "chunks_per_second")
    rows = [(name, *(f"{result[key]:.1f}" for key in keys)) for name, result in results.items()]
    print_rows(("", *columns), rows, 10)


def print_quality(result: dict[str, Any]) -> None:
    print(f"\nretrieval quality, {result['queries']} queries")
    rows = [(mode, f"{m['recall_at_10']:.3f}", f"{m['mrr']:.3f}") for mode, m in result["modes"].items()]
    print_rows(("mode", "recall@10", "MRR"), rows, 10)


def print_latency(result: dict[str, Any]) -> None:
    print(f"\nsearch latency at {result['chunks']:,} chunks (filled in {result['fill_seconds']:.0f} s), ms")
    columns = ("mode", "embed p50", "embed p95", "SQL p50", "SQL p95", "total p50", "total p95")
    series = ("embedding_ms", "sql_ms", "total_ms")
    rows = [
        (mode, *(f"{result[mode][name][p]:.2f}" for name in series for p in ("p50", "p95"))) for mode in MODES
    ]
    print_rows(columns, rows, 10)
    explain = result["explain_hybrid_ms"]
    print(
        f"EXPLAIN ANALYZE hybrid: planning {explain['planning_ms']:.2f} ms, "
        f"execution {explain['execution_ms']:.2f} ms, "
        f"HNSW index {'used' if explain['uses_hnsw'] else 'NOT used'}, "
        f"GIN index {'used' if explain['uses_gin'] else 'NOT used'}"
    )


if __name__ == "__main__":
    main()
