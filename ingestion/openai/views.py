"""The /v1/files and /v1/vector_stores views: parse, delegate, render OpenAI's objects.

API-key authentication and tenant scoping are TenantScopedViewSet's; keys need the
`inference` scope, as every /v1 route does. Another tenant's id answers exactly
like an unknown one: the same 404, whose message names no id.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpResponse
from django.utils.http import content_disposition_header
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from aiaas.api_errors import error_body
from aiaas.api_parsers import JSONParser
from gateway.errors import GatewayError
from ingestion import services
from ingestion.models import Collection, Document, StoredFile
from ingestion.openai import bodies, objects, selectors
from ingestion.openai.pagination import FILE_PAGES, VECTOR_STORE_PAGES, cursor_page
from ingestion.search import RRF_K, SearchInputError, SearchMode, search
from ingestion.services import IngestionInputError
from tenants.api.base import TenantScopedViewSet
from tenants.models import ApiKeyScope

# A hybrid score is a sum of 1 / (RRF_K + rank) over two lists: at most this much.
BEST_HYBRID_SCORE = 2 / (RRF_K + 1)
# What a search's own parameters are called on OpenAI's surface.
SEARCH_PARAMS = {"top_k": "max_num_results"}


class JsonWhateverAccepted(DefaultContentNegotiation):
    """OpenAI's API answers JSON (or a file's bytes) whatever Accept says; the SDK
    asks for `application/binary` when it reads a file's content."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class OpenAIViewSet(TenantScopedViewSet):
    required_scope = ApiKeyScope.INFERENCE
    tenant_field = None  # in the tenant's schema: the schema is the boundary
    schema = None  # OpenAI's shape, documented by hand in gateway/openapi_v1.yaml
    content_negotiation_class = JsonWhateverAccepted
    metadata_class = None  # OPTIONS is a 405: OpenAI's API describes itself in no response

    def handle_exception(self, exc: Exception) -> Response:
        """Refusals from the services, search and the gateway, in OpenAI's shape."""
        if isinstance(exc, IngestionInputError):
            return refusal(exc.status, exc.message, exc.code, exc.param)
        if isinstance(exc, SearchInputError):
            return refusal(400, exc.message, "invalid_value", SEARCH_PARAMS.get(exc.param, exc.param))
        if isinstance(exc, GatewayError):
            return Response(exc.body(), status=exc.status, headers=exc.headers())
        return super().handle_exception(exc)


def refusal(status: int, message: str, code: str, param: str | None) -> Response:
    return Response(error_body(status, message, code, param), status=status)


def stored_file_or_404(file_id: str) -> StoredFile:
    stored = StoredFile.objects.filter(pk=file_id).first()
    if stored is None:
        raise NotFound("No such file.", code="not_found")
    return stored


class FileViewSet(OpenAIViewSet):
    """/v1/files: upload (multipart), list, retrieve, delete, content."""

    required_flag = "ingestion"

    parser_classes = (MultiPartParser, FormParser)

    def tenant_queryset(self) -> QuerySet[StoredFile]:
        return StoredFile.objects.all()

    def stored_file(self, file_id: str) -> StoredFile:
        stored: StoredFile | None = self.get_queryset().filter(pk=file_id).first()
        if stored is None:
            raise NotFound("No such file.", code="not_found")
        return stored

    def list(self, request: Request) -> Response:
        files = self.get_queryset()
        if purpose := request.query_params.get("purpose"):
            files = files.filter(purpose=purpose)
        return Response(cursor_page(files, request, FILE_PAGES, objects.file_object))

    def create(self, request: Request) -> Response:
        upload = bodies.file_upload(request.data, request.FILES)
        stored = services.store_file(
            upload.file,
            filename=upload.file.name or "",
            purpose=upload.purpose,
            content_type=upload.file.content_type or "",
            api_key_id=self.api_key.pk,
        )
        return Response(objects.file_object(stored))

    def retrieve(self, request: Request, file_id: str) -> Response:
        return Response(objects.file_object(self.stored_file(file_id)))

    def destroy(self, request: Request, file_id: str) -> Response:
        services.delete_file(self.stored_file(file_id))
        return Response(objects.deleted(file_id, "file"))

    def content(self, request: Request, file_id: str) -> HttpResponse:
        """The file's bytes, read whole: under ASGI Django would read a streamed file
        into memory anyway (files are at most INGESTION_MAX_FILE_BYTES)."""
        stored = self.stored_file(file_id)
        with stored.content.open("rb") as file:
            content = file.read()
        response = HttpResponse(content, content_type=stored.content_type or "application/octet-stream")
        response["Content-Disposition"] = content_disposition_header(True, stored.filename) or "attachment"
        return response


class VectorStoreViewSet(OpenAIViewSet):
    """/v1/vector_stores: create, list, retrieve, update, delete, search."""

    required_flag = "ingestion"

    parser_classes = (JSONParser,)

    def tenant_queryset(self) -> QuerySet[Collection]:
        return selectors.collections_with_counts()

    def collection(self, vector_store_id: str) -> Collection:
        collection: Collection | None = self.get_queryset().filter(pk=vector_store_id).first()
        if collection is None:
            raise NotFound("No such vector store.", code="not_found")
        return collection

    def render(self, collection: Collection) -> dict[str, Any]:
        usage = collection.documents_bytes  # type: ignore[attr-defined]
        return objects.vector_store_object(collection, selectors.counts_of(collection), usage)

    def list(self, request: Request) -> Response:
        return Response(cursor_page(self.get_queryset(), request, VECTOR_STORE_PAGES, self.render))

    def create(self, request: Request) -> Response:
        body = bodies.vector_store_create(request.data)
        chunking = body.chunking
        with transaction.atomic():
            files = [file_for_body(file_id, index) for index, file_id in enumerate(body.file_ids)]
            collection = services.create_collection(
                name=body.name.strip() or "Untitled vector store",
                description=body.description,
                metadata=body.metadata,
                chunk_tokens=chunking.max_tokens if chunking else None,
                chunk_overlap=chunking.overlap_tokens if chunking else None,
                api_key_id=self.api_key.pk,
            )
            for stored in files:
                services.add_file(collection, stored, api_key_id=self.api_key.pk)
        return Response(self.render(self.collection(collection.pk)))

    def retrieve(self, request: Request, vector_store_id: str) -> Response:
        return Response(self.render(self.collection(vector_store_id)))

    def update(self, request: Request, vector_store_id: str) -> Response:
        collection = self.collection(vector_store_id)
        body = bodies.vector_store_update(request.data)
        services.update_collection(collection, name=body.name, metadata=body.metadata)
        return Response(self.render(self.collection(vector_store_id)))

    def destroy(self, request: Request, vector_store_id: str) -> Response:
        services.delete_collection(self.collection(vector_store_id))
        return Response(objects.deleted(vector_store_id, "vector_store.deleted"))

    def search(self, request: Request, vector_store_id: str) -> Response:
        collection = self.collection(vector_store_id)
        body = bodies.search_request(request.data)
        result = search(
            collection,
            body.query,
            top_k=body.max_num_results,
            mode=SearchMode.HYBRID,
            filters=body.filters,
            api_key=self.api_key,
        )
        documents = selectors.documents_by_id([hit.document_id for hit in result.hits])
        data = [
            search_result(documents[hit.document_id], hit.text, hit.score / BEST_HYBRID_SCORE)
            for hit in result.hits
            if hit.document_id in documents and hit.score / BEST_HYBRID_SCORE >= body.score_threshold
        ]
        return Response(
            {
                "object": "vector_store.search_results.page",
                "search_query": body.queries,
                "data": data,
                "has_more": False,
                "next_page": None,
            }
        )


def file_for_body(file_id: str, index: int) -> StoredFile:
    stored = StoredFile.objects.filter(pk=file_id).first()
    if stored is None:
        raise bodies.invalid(f"file_ids[{index}]", "no such file", "not_found")
    return stored


def search_result(document: Document, text: str, score: float) -> dict[str, Any]:
    """A hit as OpenAI's search result; a document not made from a file (a URL, pasted
    text) is named by its own id and title."""
    return {
        "file_id": document.file_id or document.id,
        "filename": document.file.filename if document.file else document.title,
        "score": round(min(score, 1.0), 6),
        "attributes": document.metadata,
        "content": [{"type": "text", "text": text}],
    }


class VectorStoreFileViewSet(OpenAIViewSet):
    """/v1/vector_stores/{id}/files: attach a file, list, retrieve, detach (the stored
    file stays), content (the chunks searches read)."""

    required_flag = "ingestion"

    parser_classes = (JSONParser,)

    def tenant_queryset(self) -> QuerySet[Collection]:
        return Collection.objects.all()

    def collection(self, vector_store_id: str) -> Collection:
        collection: Collection | None = self.get_queryset().filter(pk=vector_store_id).first()
        if collection is None:
            raise NotFound("No such vector store.", code="not_found")
        return collection

    def document(self, vector_store_id: str, file_id: str) -> Document:
        collection = self.collection(vector_store_id)
        stored = StoredFile.objects.filter(pk=file_id).first()
        document = selectors.document_for_file(collection, stored) if stored else None
        if document is None:
            raise NotFound("No such file in this vector store.", code="not_found")
        return document

    def list(self, request: Request, vector_store_id: str) -> Response:
        documents = selectors.file_documents(self.collection(vector_store_id))
        if status := request.query_params.get("filter"):
            if status not in objects.OPENAI_STATUSES:
                raise bodies.invalid("filter", f"must be one of {', '.join(objects.OPENAI_STATUSES)}")
            documents = documents.filter(status__in=objects.statuses_for(status))
        page = cursor_page(
            documents, request, VECTOR_STORE_PAGES, objects.vector_store_file_object, "file_id"
        )
        return Response(page)

    def create(self, request: Request, vector_store_id: str) -> Response:
        collection = self.collection(vector_store_id)
        body = bodies.vector_store_file_create(request.data)
        stored = stored_file_or_404(body.file_id)
        chunking = body.chunking
        if chunking and (chunking.max_tokens, chunking.overlap_tokens) != (
            collection.chunk_tokens,
            collection.chunk_overlap,
        ):
            message = "differs from the vector store's: chunking is set per vector store, when it is created"
            raise bodies.invalid("chunking_strategy", message, "unsupported_parameter")
        document, _ = services.add_file(
            collection, stored, metadata=body.attributes, api_key_id=self.api_key.pk
        )
        return Response({**objects.vector_store_file_object(document), "id": stored.id})

    def retrieve(self, request: Request, vector_store_id: str, file_id: str) -> Response:
        document = self.document(vector_store_id, file_id)
        return Response({**objects.vector_store_file_object(document), "id": file_id}, headers=POLL_AFTER)

    def destroy(self, request: Request, vector_store_id: str, file_id: str) -> Response:
        services.delete_document(self.document(vector_store_id, file_id))
        return Response(objects.deleted(file_id, "vector_store.file.deleted"))

    def content(self, request: Request, vector_store_id: str, file_id: str) -> Response:
        chunks = selectors.current_chunks(self.document(vector_store_id, file_id))
        data = [{"type": "text", "text": text} for text in chunks.values_list("text", flat=True)]
        page = {
            "object": "vector_store.file_content.page",
            "data": data,
            "has_more": False,
            "next_page": None,
        }
        return Response(page)


# The SDK's pollers wait this long between retrieves of an in-progress file.
POLL_AFTER = {"openai-poll-after-ms": "500"}
