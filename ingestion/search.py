"""Search over a collection's chunks: `vector` (pgvector cosine distance on the HNSW
index of the collection's vector size), `keyword` (PostgreSQL full text), or
`hybrid`, the reciprocal rank fusion of the two.

Promises:
- Only chunks of `ready` documents at their document's current generation are
  read: a search never sees half of a re-ingestion, an old version or a failed
  document. Metadata filters are applied inside the SQL, never after a limit.
- Both candidate lists and their fusion are one SQL statement, one round trip;
  a second, exact, scan only when the HNSW index yielded fewer vector
  candidates than wanted (pgvector 0.6 filters after the index: its
  neighbours may be other collections' chunks or filtered out).
- The query is embedded through the gateway's embeddings service, attributed to
  the caller's key (its limits, budget and usage ledger apply); keyword search
  makes no model call.

Hybrid is RRF (Cormack et al., 2009) with k = 60 over the first
max(top_k * 4, 40) candidates of each list: a chunk scores the sum of
1 / (60 + rank) over the lists it is in. Ranks need no calibration between a
cosine similarity and a ts_rank_cd, whose scales are unrelated
(docs/decisions/0019).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils.module_loading import import_string

from ingestion.models import Collection
from ingestion.runtime import runtime
from tenants.models import ApiKey

RRF_K = 60
MAX_TOP_K = 100
MAX_QUERY_CHARS = 4000
MAX_FILTER_KEYS = 20
MAX_FILTER_VALUES = 100
MAX_DOCUMENT_IDS = 1000
# pgvector's upper bound for hnsw.ef_search.
MAX_EF_SEARCH = 1000

Scalar = str | int | float | bool | None


class SearchMode(StrEnum):
    HYBRID = "hybrid"
    VECTOR = "vector"
    KEYWORD = "keyword"


class SearchInputError(ValueError):
    """A search the caller asked for wrongly (an API answers 400 naming `param`)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


@dataclass(frozen=True)
class Filters:
    """Which documents a search reads: metadata equal to `equal`, metadata keys whose
    value is one of `any_of`'s, and (when given) only `document_ids`."""

    equal: dict[str, Scalar] = field(default_factory=dict)
    any_of: dict[str, tuple[Scalar, ...]] = field(default_factory=dict)
    document_ids: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    document_id: str
    document_title: str
    text: str
    position: int
    heading: str
    page: int | None
    score: float
    # Each list's rank (1-based) and score, None when the chunk was not among its candidates.
    vector_rank: int | None
    vector_score: float | None  # cosine similarity
    keyword_rank: int | None
    keyword_score: float | None  # ts_rank_cd


@dataclass(frozen=True)
class SearchUsage:
    model: str | None = None
    prompt_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    request_id: str | None = None


@dataclass(frozen=True)
class SearchResult:
    mode: SearchMode
    hits: list[Hit]
    usage: SearchUsage
    embedding_ms: float
    sql_ms: float


Reranker = Callable[[str, list[Hit]], list[Hit]]


def search(
    collection: Collection,
    query: str,
    *,
    top_k: int = 10,
    mode: SearchMode | str = SearchMode.HYBRID,
    filters: Mapping[str, object] | None = None,
    document_ids: list[str] | None = None,
    api_key: ApiKey,
    rerank: Reranker | None = None,
) -> SearchResult:
    """The `top_k` best chunks of `collection` for `query`, best first. Raises
    SearchInputError for bad input and GatewayError when embedding the query fails.
    `rerank` (or else the INGESTION_RERANKER setting) reorders the fused candidates
    before they are cut to `top_k`. Runs in the tenant's schema."""
    mode = parse_mode(mode)
    query = check_query(query, top_k)
    parsed = parse_filters(filters, document_ids)
    if collection.dimensions is None:  # the caller's copy may predate the first embedding
        collection.refresh_from_db(fields=["dimensions"])
    if collection.dimensions is None:  # nothing embedded yet, so no chunk either
        return SearchResult(mode, [], SearchUsage(), 0.0, 0.0)
    started = time.perf_counter()
    keyword_only = mode == SearchMode.KEYWORD
    vector, usage = ([], SearchUsage()) if keyword_only else embed_query(collection, query, api_key)
    embedded = time.perf_counter()
    reranker = rerank or configured_reranker()
    limit = candidate_count(top_k) if reranker else top_k
    hits = fetch_hits(collection, mode, query, vector, parsed, top_k, limit)
    sql_ms = (time.perf_counter() - embedded) * 1000
    if reranker:
        hits = reranker(query, hits)[:top_k]
    return SearchResult(mode, hits, usage, (embedded - started) * 1000, sql_ms)


def parse_mode(mode: SearchMode | str) -> SearchMode:
    try:
        return SearchMode(mode)
    except ValueError:
        choices = ", ".join(m.value for m in SearchMode)
        raise SearchInputError("mode", f"Unknown search mode `{mode}`: one of {choices}.") from None


def check_query(query: str, top_k: int) -> str:
    if not 1 <= top_k <= MAX_TOP_K:
        raise SearchInputError("top_k", f"top_k must be between 1 and {MAX_TOP_K}.")
    if not query.strip():
        raise SearchInputError("query", "The query is empty.")
    if len(query) > MAX_QUERY_CHARS:
        raise SearchInputError("query", f"The query exceeds {MAX_QUERY_CHARS} characters.")
    return query.strip()


def parse_filters(filters: Mapping[str, object] | None, document_ids: list[str] | None = None) -> Filters:
    """Metadata filters: `{"key": value}` matches metadata equal to the value,
    `{"key": {"$in": [values]}}` one of the values; values are JSON scalars."""
    equal: dict[str, Scalar] = {}
    any_of: dict[str, tuple[Scalar, ...]] = {}
    if len(filters or {}) > MAX_FILTER_KEYS:
        raise SearchInputError("filters", f"At most {MAX_FILTER_KEYS} filter keys.")
    for key, condition in (filters or {}).items():
        if not isinstance(key, str) or not key or key.startswith("$") or len(key) > 200:
            raise SearchInputError("filters", f"`{key}` is not a metadata key.")
        if isinstance(condition, dict):
            any_of[key] = parse_condition(key, condition)
        else:
            equal[key] = scalar(key, condition)
    if document_ids is not None and len(document_ids) > MAX_DOCUMENT_IDS:
        raise SearchInputError("document_ids", f"At most {MAX_DOCUMENT_IDS} document ids.")
    ids = tuple(document_ids) if document_ids is not None else None
    return Filters(equal, any_of, ids)


def parse_condition(key: str, condition: dict[Any, object]) -> tuple[Scalar, ...]:
    operators = set(condition)
    if operators != {"$in"}:
        unknown = ", ".join(sorted(str(o) for o in operators - {"$in"})) or "none"
        message = f"Unknown filter operator ({unknown}): only `$in` is supported."
        raise SearchInputError(f"filters.{key}", message)
    values = condition["$in"]
    if not isinstance(values, list) or not 1 <= len(values) <= MAX_FILTER_VALUES:
        raise SearchInputError(f"filters.{key}", f"`$in` takes a list of 1 to {MAX_FILTER_VALUES} values.")
    return tuple(scalar(key, value) for value in values)


def scalar(key: str, value: object) -> Scalar:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise SearchInputError(f"filters.{key}", "A filter value must be a string, number, boolean or null.")


def candidate_count(top_k: int) -> int:
    return max(top_k * 4, 40)


def ef_search(candidates: int) -> int:
    """The HNSW search breadth: the index yields at most this many chunks before the
    collection, generation and filter conditions drop some, so it is kept well
    above the candidates wanted (pgvector 0.6 has no iterative index scans)."""
    return min(MAX_EF_SEARCH, max(candidates * 2, 100))


def embed_query(collection: Collection, query: str, api_key: ApiKey) -> tuple[list[float], SearchUsage]:
    request_id = f"req_{uuid.uuid4().hex}"
    rt = runtime()
    body = {"model": collection.embedding_model, "input": [query]}
    embeddings = rt.run(rt.gateway.embeddings(api_key, body, request_id))
    vector = embeddings.vectors[0]
    if len(vector) != collection.dimensions:
        raise SearchInputError(
            "query",
            f"The collection's model `{collection.embedding_model}` returned {len(vector)} dimensions; "
            f"its chunks have {collection.dimensions}.",
        )
    usage = SearchUsage(embeddings.model_id, embeddings.prompt_tokens, embeddings.cost_usd, request_id)
    return vector, usage


@cache
def configured_reranker() -> Reranker | None:
    """INGESTION_RERANKER: the dotted path of a `(query, hits) -> hits` callable, or empty."""
    path: str = settings.INGESTION_RERANKER
    return import_string(path) if path else None


def fetch_hits(
    collection: Collection,
    mode: SearchMode,
    query: str,
    vector: list[float],
    filters: Filters,
    top_k: int,
    limit: int,
) -> list[Hit]:
    assert collection.dimensions is not None
    candidates = candidate_count(top_k)
    sql, params = search_statement(mode, collection.dimensions, filters)
    params |= {
        "collection": collection.id,
        "vector": vector_literal(vector),
        "config": collection.search_config,
        "query": query,
        "candidates": candidates,
        "limit": limit,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        if mode != SearchMode.KEYWORD:
            cursor.execute(f"SET LOCAL hnsw.ef_search = {ef_search(candidates)}")
        cursor.execute(sql, params)
        rows = cursor.fetchall()
        if mode != SearchMode.KEYWORD and (not rows or rows[0][-1] < candidates):
            # The index scan's neighbours were mostly other collections' or filtered out.
            exact, _ = search_statement(mode, collection.dimensions, filters, exact=True)
            cursor.execute(exact, params)
            rows = cursor.fetchall()
    return [Hit(*row[:-1]) for row in rows]


def vector_literal(vector: list[float]) -> str:
    return "[" + ",".join(repr(float(component)) for component in vector) + "]"


# The chunks a search may read (of the document `d`).
VISIBLE = "c.collection_id = %(collection)s AND c.generation = d.generation AND d.status = 'ready'"

# The nearest candidates. INDEXED_DISTANCE is exactly the form of the partial HNSW
# index of size {d}; EXACT_DISTANCE, which no index matches, is an exact scan.
VECTOR_CANDIDATES = """
    SELECT id, row_number() OVER (ORDER BY distance, id) AS rank, 1 - distance AS score FROM (
        SELECT c.id, {distance} AS distance
        FROM ingestion_chunk c JOIN ingestion_document d ON d.id = c.document_id
        WHERE {visible} AND c.dimensions = {d}{filters}
        ORDER BY {distance}
        LIMIT %(candidates)s
    ) nearest
"""
INDEXED_DISTANCE = "c.embedding::vector({d}) <=> %(vector)s::vector({d})"
EXACT_DISTANCE = "c.embedding <=> %(vector)s::vector"

KEYWORD_CANDIDATES = """
    SELECT id, row_number() OVER (ORDER BY score DESC, id) AS rank, score FROM (
        SELECT c.id, ts_rank_cd(c.search_vector, q.query)::float8 AS score
        FROM ingestion_chunk c JOIN ingestion_document d ON d.id = c.document_id
            CROSS JOIN websearch_to_tsquery(%(config)s::regconfig, %(query)s) AS q(query)
        WHERE {visible} AND c.search_vector @@ q.query{filters}
        ORDER BY score DESC, c.id
        LIMIT %(candidates)s
    ) matched
"""

NO_CANDIDATES = "SELECT NULL::bigint AS id, NULL::bigint AS rank, NULL::float8 AS score WHERE false"

SCORES = {
    SearchMode.HYBRID: f"coalesce(1.0 / ({RRF_K} + v.rank), 0) + coalesce(1.0 / ({RRF_K} + k.rank), 0)",
    SearchMode.VECTOR: "v.score",
    SearchMode.KEYWORD: "k.score",
}

SEARCH = """
WITH vector_hits AS ({vector}),
keyword_hits AS ({keyword}),
fused AS (
    SELECT coalesce(v.id, k.id) AS id, ({score})::float8 AS score,
        v.rank AS vector_rank, v.score AS vector_score, k.rank AS keyword_rank, k.score AS keyword_score
    FROM vector_hits v FULL JOIN keyword_hits k ON k.id = v.id
)
SELECT c.id, c.document_id, d.title, c.text, c.position, c.heading, c.page, f.score,
    f.vector_rank, f.vector_score, f.keyword_rank, f.keyword_score,
    (SELECT count(*) FROM vector_hits) AS vector_candidates
FROM fused f JOIN ingestion_chunk c ON c.id = f.id JOIN ingestion_document d ON d.id = c.document_id
ORDER BY f.score DESC, c.id
LIMIT %(limit)s
"""


def search_statement(
    mode: SearchMode, dimensions: int, filters: Filters, *, exact: bool = False
) -> tuple[str, dict[str, Any]]:
    """The SQL of a search and its filter parameters (the caller adds the rest). Its
    rows end with the number of vector candidates found."""
    where, params = filter_clauses(filters)
    distance = (EXACT_DISTANCE if exact else INDEXED_DISTANCE).format(d=int(dimensions))
    vector = VECTOR_CANDIDATES.format(d=int(dimensions), visible=VISIBLE, filters=where, distance=distance)
    keyword = KEYWORD_CANDIDATES.format(visible=VISIBLE, filters=where)
    sql = SEARCH.format(
        vector=NO_CANDIDATES if mode == SearchMode.KEYWORD else vector,
        keyword=NO_CANDIDATES if mode == SearchMode.VECTOR else keyword,
        score=SCORES[mode],
    )
    return sql, params


def filter_clauses(filters: Filters) -> tuple[str, dict[str, Any]]:
    """Conditions on the document `d`, as JSONB containment (`@>`) of the metadata."""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if filters.equal:
        clauses.append("d.metadata @> %(metadata)s::jsonb")
        params["metadata"] = json.dumps(filters.equal)
    for number, (key, values) in enumerate(filters.any_of.items()):
        clauses.append(f"d.metadata @> ANY(%(any_of_{number})s::jsonb[])")
        params[f"any_of_{number}"] = [json.dumps({key: value}) for value in values]
    if filters.document_ids is not None:
        clauses.append("d.id = ANY(%(document_ids)s)")
        params["document_ids"] = list(filters.document_ids)
    return "".join(f" AND {clause}" for clause in clauses), params
