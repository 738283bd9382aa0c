from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from rest_framework import serializers

from aiaas.api_serializers import StrictSerializer
from analytics.backends.base import Query
from tenants.models import ApiKey

MAX_RANGE = timedelta(days=400)
MAX_HOURLY_RANGE = timedelta(days=31)
DEFAULT_RANGE = timedelta(hours=24)
LATEST = datetime(9999, 12, 31, tzinfo=UTC)
MAX_VALUES = 20
STATUSES = ("2xx", "4xx", "5xx")


def without_trailing_underscores(fields: dict[str, Any]) -> dict[str, Any]:
    """`from` (a keyword) and `data` (a Serializer property) are declared `from_` and `data_`."""
    return {name.removesuffix("_"): field for name, field in fields.items()}


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floor = floor_hour(moment)
    return floor if floor == moment else floor + timedelta(hours=1)


def listed(text: str, field: str) -> list[str]:
    values = [value.strip() for value in text.split(",") if value.strip()]
    if not values:
        raise serializers.ValidationError({field: ["name at least one value"]})
    if len(values) > MAX_VALUES:
        raise serializers.ValidationError({field: [f"at most {MAX_VALUES} values"]})
    return values


class SummaryQuerySerializer(serializers.Serializer[Any]):
    """`?from=&to=` and filters. Times are rounded out to whole UTC hours (the rollups'
    grain); `to` defaults to the end of the current hour, `from` to 24 hours before `to`."""

    from_ = serializers.DateTimeField(
        required=False, help_text="ISO 8601; rounded down to the hour. Default: 24 hours before `to`."
    )
    to = serializers.DateTimeField(
        required=False, help_text="ISO 8601, excluded; rounded up to the hour. Default: the end of this hour."
    )
    model = serializers.CharField(required=False, help_text="Model ids, comma-separated.")
    key = serializers.CharField(required=False, help_text="API key ids or prefixes, comma-separated.")
    tier = serializers.CharField(required=False, help_text="Tiers, comma-separated.")
    status = serializers.CharField(
        required=False, help_text="Status classes: 2xx, 4xx, 5xx, comma-separated."
    )

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return without_trailing_underscores(super().get_fields())

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("to") and attrs["to"] >= LATEST:
            raise serializers.ValidationError({"to": ["must be before 9999-12-31"]})
        end = ceil_hour(attrs.get("to") or timezone.now())
        start = floor_hour(attrs["from"]) if attrs.get("from") else end - DEFAULT_RANGE
        if start >= end:
            raise serializers.ValidationError({"from": ["must be before `to`"]})
        if end - start > MAX_RANGE:
            raise serializers.ValidationError({"to": [f"the range is at most {MAX_RANGE.days} days"]})
        return {"query": self.query(attrs, start, end)}

    def query(self, attrs: dict[str, Any], start: datetime, end: datetime, **more: Any) -> Query:
        return Query(
            tenant_id=self.context["tenant_id"],
            start=start,
            end=end,
            models=tuple(listed(attrs["model"], "model")) if "model" in attrs else (),
            api_key_ids=self.key_ids(attrs["key"]) if "key" in attrs else (),
            tiers=self.tiers(attrs["tier"]) if "tier" in attrs else (),
            statuses=self.statuses(attrs["status"]) if "status" in attrs else (),
            **more,
        )

    def key_ids(self, text: str) -> tuple[int, ...]:
        """Ids are taken as given (a deleted key's figures stay under its id); a prefix
        must name one of the tenant's keys."""
        keys: QuerySet[ApiKey] = self.context["keys"]
        ids = []
        for value in listed(text, "key"):
            if value.isdigit():
                ids.append(int(value))
                continue
            found = keys.filter(prefix=value).values_list("pk", flat=True).first()
            if found is None:
                raise serializers.ValidationError(
                    {"key": [f"no API key of this tenant has the prefix {value!r}"]}
                )
            ids.append(found)
        return tuple(ids)

    def tiers(self, text: str) -> tuple[int, ...]:
        values = listed(text, "tier")
        if not all(value.isdigit() and int(value) < 2**15 for value in values):
            raise serializers.ValidationError({"tier": ["tiers are whole numbers, comma-separated"]})
        return tuple(int(value) for value in values)

    def statuses(self, text: str) -> tuple[Any, ...]:
        values = listed(text, "status")
        if any(value not in STATUSES for value in values):
            raise serializers.ValidationError({"status": [f"status classes are {', '.join(STATUSES)}"]})
        return tuple(values)


class TimeseriesQuerySerializer(SummaryQuerySerializer):
    """As the summary's, with `granularity` (default: hour up to 2 days, day beyond;
    hour allows at most 31 days) and `group_by`."""

    granularity = serializers.ChoiceField(choices=["hour", "day"], required=False)
    group_by = serializers.ChoiceField(choices=["model", "key", "tier", "status"], required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        query: Query = super().validate(attrs)["query"]
        span = query.end - query.start
        granularity = attrs.get("granularity") or ("hour" if span <= timedelta(days=2) else "day")
        if granularity == "hour" and span > MAX_HOURLY_RANGE:
            raise serializers.ValidationError(
                {"granularity": [f"hour granularity covers at most {MAX_HOURLY_RANGE.days} days; use day"]}
            )
        extra = {"granularity": granularity, "group_by": attrs.get("group_by")}
        return {"query": self.query(attrs, query.start, query.end, **extra)}


class PercentilesSerializer(StrictSerializer):
    p50 = serializers.FloatField(allow_null=True)
    p90 = serializers.FloatField(allow_null=True)
    p95 = serializers.FloatField(allow_null=True)
    p99 = serializers.FloatField(allow_null=True)


class FiguresSerializer(StrictSerializer):
    """The KPIs of a set of requests (analytics.backends.base.figures_json)."""

    requests = serializers.IntegerField()
    succeeded = serializers.IntegerField(help_text="Requests answered with a 2xx status.")
    success_rate = serializers.FloatField(allow_null=True, help_text="0-1; null without requests.")
    error_rate = serializers.FloatField(allow_null=True, help_text="0-1; null without requests.")
    errors_ = serializers.DictField(
        child=serializers.IntegerField(), help_text="Failed requests by error type."
    )
    latency_ms = PercentilesSerializer(
        help_text="Within 1% of the exact percentiles; nulls without requests."
    )
    ttft_ms = PercentilesSerializer(help_text="Time to first token of streamed requests, within 1%.")
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    cost_usd = serializers.DecimalField(max_digits=24, decimal_places=6, coerce_to_string=True)
    estimated_requests = serializers.IntegerField(help_text="Requests billed on estimated tokens.")
    tiers = serializers.DictField(child=serializers.IntegerField(), help_text="Requests by tier served.")

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return without_trailing_underscores(super().get_fields())


class FreshnessSerializer(StrictSerializer):
    watermark = serializers.IntegerField(help_text="The last usage ledger id in these figures.")
    pending_rows = serializers.IntegerField(help_text="Ledger rows not in these figures yet.")
    lag_seconds = serializers.FloatField(help_text="Age of the oldest of them; 0 when none.")


class SummarySerializer(FiguresSerializer):
    object = serializers.SerializerMethodField(help_text='"analytics.summary".')
    from_ = serializers.DateTimeField()
    to = serializers.DateTimeField()
    freshness = FreshnessSerializer(help_text="How far the read model is behind the ledger.")

    def get_object(self, summary: Any) -> str:
        return "analytics.summary"


class PointSerializer(FiguresSerializer):
    t = serializers.DateTimeField(help_text="The bucket's start (UTC hour or day).")
    group = serializers.CharField(
        allow_null=True,
        help_text="The group_by value: a model id, key id, tier or status class; null without group_by "
        "or for requests without one (no key, no tier served).",
    )


class TimeseriesSerializer(StrictSerializer):
    object = serializers.ChoiceField(choices=["list"])
    from_ = serializers.DateTimeField()
    to = serializers.DateTimeField()
    granularity = serializers.ChoiceField(choices=["hour", "day"])
    group_by = serializers.ChoiceField(choices=["model", "key", "tier", "status"], allow_null=True)
    data_ = PointSerializer(many=True)

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return without_trailing_underscores(super().get_fields())
