from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from aiaas.api_serializers import StrictModelSerializer, StrictSerializer
from routing.models import TenantRouting


class RoutingReportQuerySerializer(serializers.Serializer[Any]):
    days = serializers.IntegerField(
        min_value=1, max_value=40, default=30, help_text="Days back, today included."
    )


class RoutingTotalsSerializer(StrictSerializer):
    routed_requests = serializers.IntegerField()
    tier_mix = serializers.DictField(
        child=serializers.FloatField(allow_null=True), help_text="Tier -> share of routed requests."
    )
    escalation_rate = serializers.FloatField(
        allow_null=True, help_text="Share served by a higher tier than chosen first."
    )
    early_exit_rate = serializers.FloatField(allow_null=True)
    exploration_rate = serializers.FloatField(allow_null=True)
    canary_share = serializers.FloatField(allow_null=True)
    judged_requests = serializers.IntegerField(
        help_text="Requests whose first tier's answer was judged (schema or feedback)."
    )
    misroute_rate = serializers.FloatField(
        allow_null=True, help_text="Judged requests whose first tier failed."
    )
    predicted_failure_rate = serializers.FloatField(
        allow_null=True, help_text="The router's mean P(fail) on them."
    )
    cost_usd = serializers.DecimalField(max_digits=20, decimal_places=6)
    expected_cost_usd = serializers.DecimalField(max_digits=20, decimal_places=6)
    top_tier_cost_usd = serializers.DecimalField(
        max_digits=20, decimal_places=6, help_text="What the same tokens would have cost on the top tier."
    )
    saved_usd = serializers.DecimalField(max_digits=20, decimal_places=6)
    saved_share = serializers.FloatField(allow_null=True)
    mean_latency_ms = serializers.FloatField(allow_null=True)
    mean_decision_ms = serializers.FloatField(allow_null=True)
    mean_novelty = serializers.FloatField(
        allow_null=True,
        help_text="How unlike the router's training prompts the tenant's are (0 alike, 1 unrelated).",
    )
    decision_latency_histogram = serializers.DictField(child=serializers.IntegerField())


class RoutingDaySerializer(RoutingTotalsSerializer):
    date = serializers.DateField()


class CanaryVersionSerializer(StrictSerializer):
    judged = serializers.IntegerField()
    failure_rate = serializers.FloatField(allow_null=True)
    mean_cost_usd = serializers.DecimalField(max_digits=20, decimal_places=6, allow_null=True)


class CanarySerializer(StrictSerializer):
    version = serializers.CharField()
    state = serializers.CharField()
    share = serializers.DecimalField(max_digits=3, decimal_places=2)
    verdict = serializers.CharField()
    versions = serializers.DictField(child=CanaryVersionSerializer())


class RoutingReportSerializer(StrictSerializer):
    object = serializers.CharField()
    days = serializers.IntegerField()
    quality_target = serializers.DecimalField(max_digits=3, decimal_places=2)
    control_version = serializers.CharField()
    canary = CanarySerializer(allow_null=True)
    totals = RoutingTotalsSerializer()
    daily = RoutingDaySerializer(many=True)


class RoutingSettingsSerializer(StrictModelSerializer[TenantRouting]):
    quality_target = serializers.DecimalField(
        max_digits=3, decimal_places=2, min_value=Decimal("0.80"), max_value=Decimal("1.00"), required=False
    )
    exploration_rate = serializers.DecimalField(
        max_digits=3, decimal_places=2, min_value=Decimal("0"), max_value=Decimal("0.10"), required=False
    )
    control_version = serializers.CharField(
        source="control.name", read_only=True, allow_null=True, default=None
    )
    canary_version = serializers.CharField(
        source="canary.name", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = TenantRouting
        fields = [
            "quality_target",
            "exploration_rate",
            "control_version",
            "canary_version",
            "canary_share",
            "canary_state",
            "canary_verdict",
            "updated_at",
        ]
        read_only_fields = ["canary_share", "canary_state", "canary_verdict", "updated_at"]
