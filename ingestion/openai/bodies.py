"""The request bodies of /v1/files and /v1/vector_stores, parsed strictly into
dataclasses: a value of the wrong JSON type is refused, never converted, and each
refusal names its parameter (OpenAI's `param`)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from rest_framework.exceptions import ValidationError

from ingestion.models import FilePurpose
from ingestion.openai.filters import metadata_filters

UPLOAD_PURPOSES = (FilePurpose.ASSISTANTS, FilePurpose.USER_DATA, FilePurpose.BATCH)
MAX_PAIRS = 16
MAX_KEY_LENGTH = 64
MAX_VALUE_LENGTH = 512
MAX_NAME_LENGTH = 200
MAX_FILE_IDS = 500
MAX_QUERY_LENGTH = 4_000
# OpenAI's bounds for a static chunking strategy.
MIN_CHUNK_TOKENS = 100
MAX_CHUNK_TOKENS = 4096

Attributes = dict[str, str | int | float | bool]


def invalid(param: str, message: str, code: str = "invalid_value") -> ValidationError:
    return ValidationError({param: [message]}, code=code)


def unsupported(param: str) -> ValidationError:
    return invalid(param, "is not supported by this platform", "unsupported_parameter")


def body_of(data: Any, *optional: str, known: Collection[str]) -> dict[str, Any]:
    """The body as an object of `known` fields whose `optional` ones, when given, are not
    null. Any other field is refused, as OpenAI and the gateway's /v1 do (a misspelt
    option is not silently ignored)."""
    if not isinstance(data, dict):
        raise ValidationError("The body must be a JSON object.", code="invalid_body")
    if unknown := sorted(str(name) for name in data if name not in known):
        raise ValidationError(
            {unknown[0]: [f"Unrecognized request argument supplied: {', '.join(unknown)}"]},
            code="unrecognized_request_argument",
        )
    for name in optional:
        if name in data and data[name] is None:
            raise invalid(name, "must not be null (leave it out instead)")
    return data


def text(data: dict[str, Any], name: str, *, max_length: int, default: str | None = None) -> str:
    value = data.get(name, default)
    if value is None:
        raise invalid(name, "is required", "missing_required_parameter")
    if not isinstance(value, str) or len(value) > max_length or "\x00" in value:
        raise invalid(name, f"must be a string of at most {max_length} characters (no NUL)")
    return value


def integer(data: dict[str, Any], name: str, *, low: int, high: int, default: int, within: str = "") -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(f"{within}{name}", f"must be an integer from {low} to {high}")
    return int(value)


def metadata_of(value: Any, param: str, *, strings_only: bool) -> Attributes:
    """OpenAI's metadata (string values) or attributes (strings, numbers, booleans):
    at most 16 pairs, keys of 64 characters, string values of 512."""
    if not isinstance(value, dict) or len(value) > MAX_PAIRS:
        raise invalid(param, f"must be an object of at most {MAX_PAIRS} pairs")
    scalar = (str,) if strings_only else (str, int, float, bool)
    for key, item in value.items():
        if len(key) > MAX_KEY_LENGTH or "\x00" in key:
            raise invalid(f"{param}.{key[:MAX_KEY_LENGTH]}", f"keys have at most {MAX_KEY_LENGTH} characters")
        if not isinstance(item, scalar) or (
            isinstance(item, str) and (len(item) > MAX_VALUE_LENGTH or "\x00" in item)
        ):
            kinds = "strings" if strings_only else "strings, numbers or booleans"
            raise invalid(
                f"{param}.{key}", f"values are {kinds}; strings of at most {MAX_VALUE_LENGTH} characters"
            )
    return value


def optional_metadata(data: dict[str, Any], name: str, *, strings_only: bool) -> Attributes | None:
    value = data.get(name)
    return None if value is None else metadata_of(value, name, strings_only=strings_only)


def refuse_expiry(data: dict[str, Any]) -> None:
    if data.get("expires_after") is not None:
        raise unsupported("expires_after")


@dataclass(frozen=True, slots=True)
class Chunking:
    """A static chunking strategy; None where a strategy is accepted means `auto`."""

    max_tokens: int
    overlap_tokens: int


def chunking_of(data: dict[str, Any]) -> Chunking | None:
    strategy = data.get("chunking_strategy")
    if strategy is None or strategy == {"type": "auto"}:
        return None
    param = "chunking_strategy"
    if (
        not isinstance(strategy, dict)
        or strategy.get("type") != "static"
        or set(strategy) != {"type", "static"}
    ):
        raise invalid(param, 'must be {"type": "auto"} or {"type": "static", "static": {...}}')
    static = strategy["static"]
    if not isinstance(static, dict) or set(static) != {"max_chunk_size_tokens", "chunk_overlap_tokens"}:
        raise invalid(f"{param}.static", "needs exactly max_chunk_size_tokens and chunk_overlap_tokens")
    within = f"{param}.static."
    size = integer(
        static, "max_chunk_size_tokens", low=MIN_CHUNK_TOKENS, high=MAX_CHUNK_TOKENS, default=0, within=within
    )
    overlap = integer(static, "chunk_overlap_tokens", low=0, high=size // 2, default=-1, within=within)
    return Chunking(size, overlap)


@dataclass(frozen=True, slots=True)
class FileUpload:
    file: UploadedFile
    purpose: FilePurpose


def file_upload(data: Any, files: Any) -> FileUpload:
    purpose = data.get("purpose")
    if purpose is None:
        raise invalid("purpose", "is required", "missing_required_parameter")
    if purpose not in UPLOAD_PURPOSES:
        accepted = ", ".join(f"`{p.value}`" for p in UPLOAD_PURPOSES)
        raise invalid("purpose", f"must be one of {accepted}")
    uploads = files.getlist("file")
    if len(uploads) != 1:
        raise invalid(
            "file", "one file is required (a multipart part named `file`)", "missing_required_parameter"
        )
    return FileUpload(uploads[0], FilePurpose(purpose))


@dataclass(frozen=True, slots=True)
class VectorStoreCreate:
    name: str
    description: str
    metadata: Attributes
    file_ids: list[str]
    chunking: Chunking | None


def vector_store_create(data: Any) -> VectorStoreCreate:
    body = body_of(
        data,
        "name",
        "description",
        "metadata",
        "file_ids",
        "chunking_strategy",
        known=("name", "description", "metadata", "file_ids", "chunking_strategy", "expires_after"),
    )
    refuse_expiry(body)
    file_ids = body.get("file_ids", [])
    if (
        not isinstance(file_ids, list)
        or len(file_ids) > MAX_FILE_IDS
        or not all(isinstance(i, str) and "\x00" not in i for i in file_ids)
    ):
        raise invalid("file_ids", f"must be a list of at most {MAX_FILE_IDS} file ids (no NUL)")
    return VectorStoreCreate(
        name=text(body, "name", max_length=MAX_NAME_LENGTH, default=""),
        description=text(body, "description", max_length=MAX_VALUE_LENGTH, default=""),
        metadata=optional_metadata(body, "metadata", strings_only=True) or {},
        file_ids=list(dict.fromkeys(file_ids)),
        chunking=chunking_of(body),
    )


@dataclass(frozen=True, slots=True)
class VectorStoreUpdate:
    name: str | None
    metadata: Attributes | None


def vector_store_update(data: Any) -> VectorStoreUpdate:
    body = body_of(data, "metadata", known=("name", "metadata", "expires_after"))
    refuse_expiry(body)
    name = None if body.get("name") is None else text(body, "name", max_length=MAX_NAME_LENGTH)
    return VectorStoreUpdate(name, optional_metadata(body, "metadata", strings_only=True))


@dataclass(frozen=True, slots=True)
class VectorStoreFileCreate:
    file_id: str
    attributes: Attributes
    chunking: Chunking | None


def vector_store_file_create(data: Any) -> VectorStoreFileCreate:
    body = body_of(
        data, "attributes", "chunking_strategy", known=("file_id", "attributes", "chunking_strategy")
    )
    return VectorStoreFileCreate(
        file_id=text(body, "file_id", max_length=40),
        attributes=optional_metadata(body, "attributes", strings_only=False) or {},
        chunking=chunking_of(body),
    )


RANKERS = frozenset({"none", "auto", "default-2024-11-15"})
MAX_RESULTS = 50


@dataclass(frozen=True, slots=True)
class SearchRequest:
    queries: list[str]
    max_num_results: int
    filters: dict[str, object] | None
    score_threshold: float

    @property
    def query(self) -> str:
        return " ".join(self.queries)


def queries_of(body: dict[str, Any]) -> list[str]:
    query = body.get("query")
    queries = [query] if isinstance(query, str) else query
    if (
        not isinstance(queries, list)
        or not queries
        or not all(isinstance(q, str) and q.strip() for q in queries)
    ):
        raise invalid("query", "must be a non-empty string or a list of them")
    if sum(len(q) for q in queries) > MAX_QUERY_LENGTH or any("\x00" in q for q in queries):
        raise invalid("query", f"must be at most {MAX_QUERY_LENGTH} characters in all (no NUL)")
    return queries


def score_threshold_of(body: dict[str, Any]) -> float:
    options = body.get("ranking_options") or {}
    if not isinstance(options, dict) or not set(options) <= {"ranker", "score_threshold"}:
        raise invalid("ranking_options", "takes `ranker` and `score_threshold`")
    if options.get("ranker", "auto") not in RANKERS:
        raise invalid("ranking_options.ranker", f"must be one of {', '.join(sorted(RANKERS))}")
    threshold = options.get("score_threshold", 0.0)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise invalid("ranking_options.score_threshold", "must be a number from 0 to 1")
    return float(threshold)


def search_request(data: Any) -> SearchRequest:
    body = body_of(
        data,
        "filters",
        "ranking_options",
        "rewrite_query",
        "max_num_results",
        known=("query", "filters", "ranking_options", "rewrite_query", "max_num_results"),
    )
    if not isinstance(body.get("rewrite_query", False), bool):
        raise invalid("rewrite_query", "must be a boolean")
    filters = body.get("filters")
    return SearchRequest(
        queries=queries_of(body),
        max_num_results=integer(body, "max_num_results", low=1, high=MAX_RESULTS, default=10),
        filters=None if filters is None else metadata_filters(filters),
        score_threshold=score_threshold_of(body),
    )
