from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents.models import Agent, AgentVersion, Run, RunEvent
from aiaas.api_serializers import StrictModelSerializer, StrictSerializer


@extend_schema_field({"type": "object", "additionalProperties": True})
class ObjectField(serializers.JSONField):
    """A JSON object (OpenAPI would otherwise say "any value")."""


@extend_schema_field({"oneOf": [{"type": "object", "additionalProperties": True}, {"type": "string"}]})
class SpecField(serializers.JSONField):
    """The spec as a JSON object, or as JSON or YAML text."""


class AgentSpecSerializer(StrictSerializer):
    spec = SpecField(help_text="The WorkflowSpec: a JSON object, or JSON or YAML text.")


class AgentSerializer(StrictModelSerializer[Agent]):
    object = serializers.SerializerMethodField()
    spec = serializers.SerializerMethodField()
    spec_source = serializers.SerializerMethodField()

    class Meta:
        model = Agent
        fields = ["object", "id", "name", "version", "spec", "spec_source", "created_at", "updated_at"]
        read_only_fields = fields

    def get_object(self, agent: Agent) -> str:
        return "agent"

    @extend_schema_field({"type": "object", "additionalProperties": True})
    def get_spec(self, agent: Agent) -> dict[str, Any]:
        spec: dict[str, Any] = self._latest(agent).spec
        return spec

    def get_spec_source(self, agent: Agent) -> str:
        """The spec as it was sent (YAML or JSON text)."""
        return self._latest(agent).source

    def _latest(self, agent: Agent) -> AgentVersion:
        return agent.versions.get(version=agent.version)


class StartRunSerializer(StrictSerializer):
    input = serializers.JSONField(default=dict, help_text="The run's input, checked against input_schema.")
    wait = serializers.BooleanField(
        default=False, help_text="Answer with the finished run (up to a timeout)."
    )
    environment = serializers.CharField(
        default="", allow_blank=True, max_length=50, help_text="An overlay of the spec to apply."
    )


class RunSerializer(StrictModelSerializer[Run]):
    object = serializers.SerializerMethodField()
    agent_id = serializers.IntegerField(read_only=True, allow_null=True)
    input = serializers.JSONField(read_only=True)
    output = serializers.JSONField(read_only=True, allow_null=True)
    cost_usd = serializers.DecimalField(max_digits=14, decimal_places=8, read_only=True)
    replay_of: serializers.PrimaryKeyRelatedField[Run] = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True
    )

    class Meta:
        model = Run
        fields = [
            "object",
            "id",
            "agent_id",
            "agent_name",
            "agent_version",
            "environment",
            "status",
            "input",
            "output",
            "error",
            "cost_usd",
            "prompt_tokens",
            "completion_tokens",
            "steps_executed",
            "stream_id",
            "replay_of",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_object(self, run: Run) -> str:
        return "run"


class RunEventSerializer(StrictModelSerializer[RunEvent]):
    object = serializers.SerializerMethodField()
    data = ObjectField(read_only=True)  # type: ignore[assignment]

    class Meta:
        model = RunEvent
        fields = ["object", "seq", "type", "step_id", "data", "created_at"]
        read_only_fields = fields

    def get_object(self, event: RunEvent) -> str:
        return "run.event"


class EventsQuerySerializer(serializers.Serializer[Any]):
    after = serializers.IntegerField(
        default=0, min_value=0, max_value=2**31 - 1, help_text="A sequence number."
    )
    limit = serializers.IntegerField(default=1000, min_value=1, max_value=1000)


class RunEventListSerializer(StrictSerializer):
    object = serializers.CharField(default="list")
    data = RunEventSerializer(many=True)  # type: ignore[assignment]
    has_more = serializers.BooleanField()
