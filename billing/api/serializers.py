from __future__ import annotations

from datetime import date
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from aiaas.api_serializers import StrictSerializer
from billing.selectors import UsageGrouping, UsagePeriod


def without_trailing_underscores(fields: dict[str, Any]) -> dict[str, Any]:
    """Fields named `from` (a keyword) or `data` (a Serializer property) are declared
    as `from_` and `data_`; this gives them their API names, keeping the order."""
    return {name.removesuffix("_"): field for name, field in fields.items()}


class UsageQuerySerializer(serializers.Serializer[Any]):
    """`?from=&to=&group_by=`: `to` defaults to the end of the current (UTC) month,
    `from` to the first day of `to`'s month, so a query with neither reports this month."""

    from_ = serializers.DateField(
        required=False, help_text="First UTC day, YYYY-MM-DD. Default: the first day of `to`'s month."
    )
    to = serializers.DateField(
        required=False, help_text="Last UTC day (included), YYYY-MM-DD. Default: the end of this month."
    )
    group_by = serializers.ChoiceField(choices=[grouping.value for grouping in UsageGrouping], default="day")

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return without_trailing_underscores(super().get_fields())

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        end: date = attrs.get("to") or UsagePeriod.month_of(timezone.now().date()).end
        start: date = attrs.get("from") or end.replace(day=1)
        if end >= date.max:
            raise serializers.ValidationError({"to": ["must be before 9999-12-31"]})
        if start > end:
            raise serializers.ValidationError({"from": ["must be on or before `to`"]})
        return {"period": UsagePeriod(start, end), "group_by": UsageGrouping(attrs["group_by"])}


class UsageGroupSerializer(StrictSerializer):
    group = serializers.DictField(
        source="identity",
        help_text=(
            'The group: {"day": "2026-11-27"}, {"model": "sim-small"} ("" when no model served), '
            '{"tier": 1} (null when none served) or {"key_id", "name", "prefix"} (nulls for a deleted key).'
        ),
    )
    requests = serializers.IntegerField(source="totals.requests")
    prompt_tokens = serializers.IntegerField(source="totals.prompt_tokens")
    completion_tokens = serializers.IntegerField(source="totals.completion_tokens")
    cost_usd = serializers.DecimalField(
        source="totals.cost_usd", max_digits=20, decimal_places=6, coerce_to_string=True
    )


class UsageReportSerializer(StrictSerializer):
    object = serializers.ChoiceField(choices=["list"])
    data_ = UsageGroupSerializer(many=True, source="groups")
    from_ = serializers.DateField(source="period.start")
    to = serializers.DateField(source="period.end")
    group_by = serializers.ChoiceField(choices=[grouping.value for grouping in UsageGrouping])

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return without_trailing_underscores(super().get_fields())


def money(source: str, help_text: str = "") -> serializers.DecimalField:
    """A USD amount, as a string with two decimals."""
    return serializers.DecimalField(
        source=source, max_digits=20, decimal_places=2, coerce_to_string=True, help_text=help_text or None
    )


class BillingPeriodSerializer(StrictSerializer):
    """`source` is declared as `source_` (a Field attribute); see without_trailing_underscores."""

    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField(help_text="Counters and a hard cap reset at this instant.")
    source_ = serializers.ChoiceField(
        choices=["stripe", "calendar"],
        help_text="`stripe`: the subscription's billing period; `calendar`: the UTC month (no subscription).",
    )

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return without_trailing_underscores(super().get_fields())


class InvoicePreviewSerializer(StrictSerializer):
    object = serializers.SerializerMethodField()
    plan = serializers.CharField(source="plan.slug", allow_null=True, default=None)
    subscription_status = serializers.CharField()
    period = BillingPeriodSerializer()
    currency = serializers.SerializerMethodField()
    cap_mode = serializers.ChoiceField(choices=["hard", "soft"])
    base_price = money("base_price_usd")
    included_tokens = serializers.IntegerField()
    included_requests = serializers.IntegerField(
        allow_null=True, help_text="Null when the plan does not count requests against an allowance."
    )
    used_tokens = serializers.IntegerField()
    used_requests = serializers.IntegerField()
    overage_tokens = serializers.IntegerField()
    overage = money("overage_usd")
    total = money("total_usd", "Base price plus overage so far.")
    projected_tokens = serializers.IntegerField()
    projected_overage = money("projected_overage_usd")
    projected_total = money("projected_total_usd", "At this period's rate of use so far, to its end.")
    quota_state = serializers.ChoiceField(choices=["within", "nearing", "overage", "blocked"])
    tokens_remaining = serializers.IntegerField(
        allow_null=True, help_text="Tokens left before a hard cap refuses requests; null on a soft cap."
    )

    def get_object(self, preview: Any) -> str:
        return "billing.preview"

    def get_currency(self, preview: Any) -> str:
        return "usd"
