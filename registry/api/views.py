from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from registry import prompts, selectors, services
from registry.api.serializers import (
    CreatePromptSerializer,
    PromptSerializer,
    RenderedPromptSerializer,
    RenderPromptSerializer,
)
from registry.models import Entry, Kind
from registry.services import RegistryError
from tenants.api.base import TenantScopedViewSet
from tenants.models import ApiKeyScope


class StateConflict(APIException):
    """The version cannot move as asked from the state it is in (or another version
    reached production at the same time): 409, the registry's reason as the message."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "invalid_state"


class PromptViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """The tenant's prompts in the registry: each POST with a name adds its next
    version (a draft); llm steps name one with `prompt_ref: {name, version}` (the
    current version when none is pinned)."""

    required_scope = ApiKeyScope.ADMIN
    tenant_field = None  # The registry's tenant entries live in the tenant's schema.
    serializer_class = PromptSerializer
    lookup_value_regex = r"[0-9]+"

    def tenant_queryset(self) -> QuerySet[Entry]:
        return selectors.entries(Kind.PROMPT)

    @extend_schema(request=CreatePromptSerializer, responses={201: PromptSerializer})
    def create(self, request: Request) -> Response:
        form = CreatePromptSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            entry = prompts.create_version(
                form.validated_data["name"], form.validated_data["template"], actor=self.actor
            )
        except prompts.PromptError as error:
            raise ValidationError({"template": [str(error)]}) from None
        except RegistryError as error:
            raise ValidationError({"name": [str(error)]}) from None
        return Response(PromptSerializer(entry).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RenderPromptSerializer, responses={200: RenderedPromptSerializer})
    @action(detail=True, methods=["post"])
    def render(self, request: Request, pk: str) -> Response:
        """This version's text with the given variables (a preview: any state renders)."""
        entry: Entry = self.get_object()
        form = RenderPromptSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            text = prompts.render(entry, form.validated_data["variables"])
        except prompts.PromptError as error:
            raise ValidationError({"variables": [str(error)]}) from None
        rendered = {"id": entry.pk, "name": entry.name, "version": entry.version, "text": text}
        return Response(RenderedPromptSerializer(rendered).data)

    @extend_schema(
        request=None,
        responses={200: PromptSerializer},
        description="Move this version one state on: draft to staging, staging to production (the "
        "version in production before it is superseded). 409 `invalid_state` from any other state.",
    )
    @action(detail=True, methods=["post"])
    def promote(self, request: Request, pk: str) -> Response:
        try:
            promoted = services.promote(self.get_object(), actor=self.actor)
        except RegistryError as error:
            raise StateConflict(str(error)) from None
        return Response(PromptSerializer(promoted).data)

    @extend_schema(
        request=None,
        responses={200: PromptSerializer},
        description="Put this prompt's previous production version back in production (this "
        "version's name picks the prompt); answers the version now in production. 409 "
        "`invalid_state` when there is none to go back to.",
    )
    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, pk: str) -> Response:
        entry: Entry = self.get_object()
        try:
            current = services.rollback(Kind.PROMPT, entry.name, actor=self.actor)
        except RegistryError as error:
            raise StateConflict(str(error)) from None
        return Response(PromptSerializer(current).data)

    @property
    def actor(self) -> str:
        return f"key:{self.api_key.prefix}"
