from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django_tenants.utils import schema_context
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from agents import selectors, services, waiting
from agents.api.serializers import (
    AgentSerializer,
    AgentSpecSerializer,
    EventsQuerySerializer,
    RunEventListSerializer,
    RunEventSerializer,
    RunSerializer,
    StartRunSerializer,
)
from agents.models import Agent, Run
from agents.spec import SpecError
from tenants.api.base import TenantScopedViewSet
from tenants.context import current_schema_name
from tenants.models import ApiKeyScope


class RunStateConflict(APIException):
    """The run is not in a state the action needs: 409, with the reason."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "invalid_state"


def spec_error(error: SpecError) -> ValidationError:
    path = f"spec.{error.path}" if error.path and error.path != "environment" else (error.path or "spec")
    return ValidationError({path: [error.message]}, code="invalid_spec")


class AgentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """The tenant's agents: versioned WorkflowSpecs. Admin keys only."""

    required_scope = ApiKeyScope.ADMIN
    required_flag = "agents"
    tenant_field = None  # Agent lives in the tenant's schema: the schema is the boundary.
    serializer_class = AgentSerializer
    lookup_value_regex = r"[0-9]+"

    def tenant_queryset(self) -> QuerySet[Agent]:
        return selectors.agents_list()

    @extend_schema(request=AgentSpecSerializer, responses={201: AgentSerializer})
    def create(self, request: Request) -> Response:
        form = AgentSpecSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            agent = services.create_agent(form.validated_data["spec"], actor=f"key:{self.api_key.prefix}")
        except SpecError as error:
            raise spec_error(error) from None
        except services.AgentNameTakenError as error:
            raise ValidationError(
                {"spec.name": [f"An agent named `{error}` exists."]}, code="name_taken"
            ) from None
        return Response(AgentSerializer(agent).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=AgentSpecSerializer, responses={200: AgentSerializer})
    def update(self, request: Request, pk: str) -> Response:
        """A new version of the agent (runs already started keep theirs)."""
        agent = self.get_object()
        form = AgentSpecSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            agent = services.update_agent(
                agent, form.validated_data["spec"], actor=f"key:{self.api_key.prefix}"
            )
        except SpecError as error:
            raise spec_error(error) from None
        except services.AgentNameTakenError as error:
            raise ValidationError(
                {"spec.name": [f"An agent named `{error}` exists."]}, code="name_taken"
            ) from None
        return Response(AgentSerializer(agent).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        services.delete_agent(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=StartRunSerializer,
        responses={201: RunSerializer},
        description="Start a run (queued on the runs queue). With `wait`, the answer is the finished run, "
        "or the run as it is when the wait times out, with `wait_timed_out` saying which.",
    )
    @action(detail=True, methods=["post"], url_path="runs")
    def runs(self, request: Request, pk: str) -> Response | StreamingHttpResponse:
        agent = self.get_object()
        form = StartRunSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data: dict[str, Any] = form.validated_data
        try:
            run = services.start_run(agent, data["input"], self.api_key, data["environment"])
        except SpecError as error:
            raise spec_error(error) from None
        except services.InputError as error:
            raise ValidationError({error.path: [error.message]}, code="invalid_input") from None
        if data["wait"]:
            return waited_run_response(current_schema_name(), run)
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)


def waited_run_response(schema_name: str, run: Run) -> StreamingHttpResponse:
    """201 with the run once it has finished, or as it is after AGENT_RUN_WAIT_SECONDS.

    The body is awaited on the server's event loop (agents/waiting.py) after this
    request's thread has given its database connection back, so waiters hold no
    connection and keep no thread busy.
    """
    if not connection.in_atomic_block:  # closing inside a transaction would roll it back
        connection.close()
    body = waited_run_body(schema_name, run.pk, run.stream_id)
    return StreamingHttpResponse(body, status=status.HTTP_201_CREATED, content_type="application/json")


async def waited_run_body(schema_name: str, run_id: int, stream_id: str) -> AsyncIterator[bytes]:
    await waiting.until_finished(schema_name, stream_id, settings.AGENT_RUN_WAIT_SECONDS)
    yield await sync_to_async(rendered_run, thread_sensitive=False)(schema_name, run_id)


def rendered_run(schema_name: str, run_id: int) -> bytes:
    with schema_context(schema_name):
        run = Run.objects.get(pk=run_id)
        data = {**RunSerializer(run).data, "wait_timed_out": not run.is_finished}
    rendered: bytes = JSONRenderer().render(data)
    return rendered


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """The tenant's agent runs, newest first. Admin keys only."""

    required_scope = ApiKeyScope.ADMIN
    required_flag = "agents"
    tenant_field = None  # Run lives in the tenant's schema.
    serializer_class = RunSerializer
    lookup_value_regex = r"[0-9]+"

    def tenant_queryset(self) -> QuerySet[Run]:
        return selectors.runs_list()

    @extend_schema(parameters=[EventsQuerySerializer], responses={200: RunEventListSerializer})
    @action(detail=True, methods=["get"])
    def events(self, request: Request, pk: str) -> Response:
        """The run's events in order: `after` a sequence number, at most `limit` of them."""
        run: Run = self.get_object()
        query = EventsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        limit = query.validated_data["limit"]
        page = list(selectors.events_of(run, query.validated_data["after"])[: limit + 1])
        data = RunEventSerializer(page[:limit], many=True).data
        return Response({"object": "list", "data": data, "has_more": len(page) > limit})

    @extend_schema(request=None, responses={200: RunSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        """Cancel the run: a queued one at once, a running one before its next step."""
        return Response(RunSerializer(services.cancel_run(self.get_object())).data)

    @extend_schema(request=None, responses={201: RunSerializer})
    @action(detail=True, methods=["post"])
    def replay(self, request: Request, pk: str) -> Response:
        """Re-run this finished run with its spec, prompts and models frozen and tool
        outputs taken from its record (no tool is called). 409 `invalid_state` for a
        run that has not finished."""
        try:
            replay = services.replay_run(self.get_object(), self.api_key)
        except services.RunNotFinishedError as error:
            raise RunStateConflict(str(error)) from None
        return Response(RunSerializer(replay).data, status=status.HTTP_201_CREATED)
