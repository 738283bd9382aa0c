"""/v1/batches: create, list, retrieve, cancel, as OpenAI's API answers them.

API-key authentication, the `inference` scope, tenant scoping and OpenAI's error
shape are ingestion's OpenAIViewSet's. Another tenant's batch answers exactly
like an unknown one: the same 404.
"""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from aiaas.api_parsers import JSONParser
from batches import services
from batches.models import Batch
from batches.openai import bodies
from batches.openai.objects import batch_object
from batches.services import BatchInputError
from ingestion.openai.pagination import PageSize, cursor_page
from ingestion.openai.views import OpenAIViewSet, refusal

BATCH_PAGES = PageSize(default=20, maximum=100)


class BatchViewSet(OpenAIViewSet):
    required_flag = "batches"
    parser_classes = (JSONParser,)

    def tenant_queryset(self) -> QuerySet[Batch]:
        return Batch.objects.all()

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, BatchInputError):
            return refusal(exc.status, exc.message, exc.code, exc.param)
        return super().handle_exception(exc)

    def batch(self, batch_id: str) -> Batch:
        batch: Batch | None = self.get_queryset().filter(pk=batch_id).first()
        if batch is None:
            raise NotFound("No such batch.", code="not_found")
        return batch

    def list(self, request: Request) -> Response:
        return Response(cursor_page(self.get_queryset(), request, BATCH_PAGES, batch_object))

    def create(self, request: Request) -> Response:
        body = bodies.batch_create(request.data)
        batch = services.create_batch(
            input_file_id=body.input_file_id,
            endpoint=body.endpoint,
            metadata=body.metadata,
            api_key_id=self.api_key.pk,
        )
        return Response(batch_object(batch))

    def retrieve(self, request: Request, batch_id: str) -> Response:
        return Response(batch_object(self.batch(batch_id)))

    def cancel(self, request: Request, batch_id: str) -> Response:
        return Response(batch_object(services.cancel_batch(self.batch(batch_id))))
