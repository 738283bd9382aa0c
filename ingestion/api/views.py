from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from aiaas.api_parsers import JSONParser
from ingestion import selectors, services
from ingestion.api.pagination import CreatedAtPagination
from ingestion.api.serializers import (
    CollectionSerializer,
    CreateCollectionSerializer,
    CreateDocumentSerializer,
    DocumentSerializer,
    UpdateCollectionSerializer,
)
from ingestion.models import Collection, Document, FilePurpose
from tenants.api.base import TenantScopedViewSet
from tenants.models import ApiKeyScope

# Collection and document ids (`vs_...`, `doc_...`); anything else is simply not found.
ID_PATTERN = r"[A-Za-z0-9_-]{1,40}"


def api_error(error: services.IngestionInputError) -> APIException:
    if error.status == status.HTTP_400_BAD_REQUEST:
        detail = {error.param: [error.message]} if error.param else [error.message]
        return ValidationError(detail, code=error.code)
    refusal = APIException(error.message, code=error.code)
    refusal.status_code = error.status
    return refusal


class CollectionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, TenantScopedViewSet
):
    """The tenant's collections of documents (OpenAI vector stores on /v1). Admin keys only."""

    required_scope = ApiKeyScope.ADMIN
    required_flag = "ingestion"
    tenant_field = None  # Collection lives in the tenant's schema: the schema is the boundary.
    serializer_class = CollectionSerializer
    pagination_class = CreatedAtPagination
    lookup_value_regex = ID_PATTERN

    def tenant_queryset(self) -> QuerySet[Collection]:
        return selectors.collections_list()

    @extend_schema(request=CreateCollectionSerializer, responses={201: CollectionSerializer})
    def create(self, request: Request) -> Response:
        form = CreateCollectionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            collection = services.create_collection(**form.validated_data, api_key_id=self.api_key.pk)
        except services.IngestionInputError as error:
            raise api_error(error) from None
        return Response(self.represent(collection), status=status.HTTP_201_CREATED)

    @extend_schema(request=UpdateCollectionSerializer, responses={200: CollectionSerializer})
    def partial_update(self, request: Request, pk: str) -> Response:
        """Rename or describe the collection (its chunking and model are fixed)."""
        collection = self.get_object()
        form = UpdateCollectionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            services.update_collection(collection, **form.validated_data)
        except services.IngestionInputError as error:
            raise api_error(error) from None
        return Response(self.represent(collection))

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        """Delete the collection with its documents and their chunks."""
        services.delete_collection(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(methods=["get"], responses={200: DocumentSerializer(many=True)})
    @extend_schema(
        methods=["post"],
        request={
            "application/json": CreateDocumentSerializer,
            "multipart/form-data": CreateDocumentSerializer,
        },
        responses={
            201: DocumentSerializer,
            200: OpenApiResponse(DocumentSerializer, description="The collection already had this content."),
        },
        description="Add raw text or a URL (JSON), or upload a file (multipart). Ingestion runs in the "
        "background: follow `status` and `chunks_done`/`chunks_total`, or the document's `stream_id`.",
    )
    @action(
        detail=True,
        methods=["get", "post"],
        parser_classes=[JSONParser, MultiPartParser],
        serializer_class=DocumentSerializer,
    )
    def documents(self, request: Request, pk: str) -> Response:
        collection = self.get_object()
        if request.method == "GET":
            page = self.paginate_queryset(selectors.documents_list(collection))
            return self.get_paginated_response(DocumentSerializer(page, many=True).data)
        form = CreateDocumentSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            document, created = self.add(collection, form.validated_data)
        except services.IngestionInputError as error:
            raise api_error(error) from None
        return Response(
            DocumentSerializer(document).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    def add(self, collection: Collection, data: dict[str, Any]) -> tuple[Document, bool]:
        options = {"title": data["title"], "metadata": data.get("metadata"), "api_key_id": self.api_key.pk}
        if data.get("text") is not None:
            return services.add_text(collection, text=data["text"], **options)
        if data.get("url") is not None:
            return services.add_url(collection, url=data["url"], **options)
        upload = data["file"]
        stored = services.store_file(
            upload,
            filename=upload.name or "",
            purpose=FilePurpose.ASSISTANTS,
            content_type=upload.content_type or "",
            api_key_id=self.api_key.pk,
        )
        return services.add_file(collection, stored, **options)

    def represent(self, collection: Collection) -> dict[str, Any]:
        data: dict[str, Any] = CollectionSerializer(self.get_queryset().get(pk=collection.pk)).data
        return data


class DocumentViewSet(mixins.RetrieveModelMixin, mixins.DestroyModelMixin, TenantScopedViewSet):
    """Documents of the tenant's collections, with their ingestion progress. Admin keys only."""

    required_scope = ApiKeyScope.ADMIN
    required_flag = "ingestion"
    tenant_field = None  # Document lives in the tenant's schema.
    serializer_class = DocumentSerializer
    lookup_value_regex = ID_PATTERN

    def tenant_queryset(self) -> QuerySet[Document]:
        return selectors.documents_list()

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        """Delete the document with its chunks."""
        services.delete_document(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: DocumentSerializer})
    @action(detail=True, methods=["post"])
    def reingest(self, request: Request, pk: str) -> Response:
        """Ingest the source again (a URL is fetched again): unchanged content ends as
        it was; changed content replaces the chunks at once when ready."""
        return Response(DocumentSerializer(services.reingest(self.get_object())).data)
