from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.validators import RegexValidator
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from aiaas.api_serializers import StrictModelSerializer, StrictSerializer
from aiaas.cors import ORIGIN_PATTERN
from routing.selectors import unknown_models_message
from tenants.models import (
    MAX_CORS_ORIGINS,
    MAX_OUTBOUND_HOSTS,
    MAX_OUTBOUND_PORTS,
    MAX_RATE_LIMIT,
    MAX_TOKEN_BUDGET,
    USD_AMOUNT,
    ApiKey,
    ApiKeyPriority,
    ApiKeyScope,
    Tenant,
)

LIMIT_FIELDS = ApiKey.LIMIT_FIELDS
# DRF refuses NUL in every CharField; this says so in the OpenAPI document (`pattern`).
NO_NUL = RegexValidator(r"^[^\x00]*$", "Null characters are not allowed.", "null_characters_not_allowed")


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, as the document says: "5" and true are refused, not converted."""

    def to_internal_value(self, data: Any) -> int:
        integral_float = isinstance(data, float) and data.is_integer()
        if isinstance(data, bool) or not (isinstance(data, int) or integral_float):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(
    {"type": "string", "format": "decimal", "pattern": f"^{USD_AMOUNT.pattern}$", "example": "25.00"}
)
class UsdAmountField(serializers.DecimalField):
    """A non-negative USD amount as a string with at most 2 decimals ("25.00"), as
    responses write it; a JSON number would pass through a float, so it is refused."""

    default_error_messages = {"invalid": 'Must be a string of digits with at most 2 decimals, like "25.00".'}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_digits=12, decimal_places=2, min_value=Decimal(0), **kwargs)

    def to_internal_value(self, data: Any) -> Decimal:
        if not isinstance(data, str) or not USD_AMOUNT.fullmatch(data):
            self.fail("invalid")
        value: Decimal = super().to_internal_value(data)
        return value


class ApiKeySerializer(StrictModelSerializer[ApiKey]):
    object = serializers.SerializerMethodField()

    class Meta:
        model = ApiKey
        fields = [
            "object",
            "id",
            "name",
            "prefix",
            "scopes",
            "allowed_models",
            "expires_at",
            "priority",
            *LIMIT_FIELDS,
            "revoked_at",
            "last_used_at",
            "created_at",
            "created_by",
        ]
        read_only_fields = fields

    def get_object(self, api_key: ApiKey) -> str:
        return "api_key"


class ApiKeyLimitsSerializer(StrictSerializer):
    """A key's overrides of its plan's limits; null (or absent on create) means the plan's."""

    requests_per_minute = StrictIntegerField(
        min_value=1,
        max_value=MAX_RATE_LIMIT,
        allow_null=True,
        required=False,
        help_text="Requests per minute for this key; null: the plan's.",
    )
    tokens_per_minute = StrictIntegerField(
        min_value=1,
        max_value=MAX_RATE_LIMIT,
        allow_null=True,
        required=False,
        help_text="Tokens per minute for this key; null: the plan's.",
    )
    monthly_spend_budget_usd = UsdAmountField(
        allow_null=True,
        required=False,
        help_text="Spend cap for this key per month, in USD; null: none (the tenant's cap still applies).",
    )
    monthly_token_budget = StrictIntegerField(
        min_value=0,
        max_value=MAX_TOKEN_BUDGET,
        allow_null=True,
        required=False,
        help_text="Token cap for this key per month; null: none (the tenant's cap still applies).",
    )


PRIORITY_HELP = "Which keys a degraded platform sheds first (503): low, then normal; high never."


class UpdateApiKeySerializer(ApiKeyLimitsSerializer):
    """PATCH: the name, the priority and the limit overrides; absent fields are left as they are."""

    name = serializers.CharField(max_length=100, required=False, validators=[NO_NUL])
    priority = serializers.ChoiceField(
        choices=ApiKeyPriority.choices, required=False, help_text=PRIORITY_HELP
    )


class CreateApiKeySerializer(ApiKeyLimitsSerializer):
    """POST: a new key; its limit overrides are optional."""

    name = serializers.CharField(max_length=100, validators=[NO_NUL])
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ApiKeyScope.choices),
        min_length=1,
        max_length=3,
        default=lambda: [ApiKeyScope.INFERENCE],
    )
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=200, validators=[NO_NUL]),
        max_length=100,
        default=list,
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    priority = serializers.ChoiceField(
        choices=ApiKeyPriority.choices, default=ApiKeyPriority.NORMAL, help_text=PRIORITY_HELP
    )

    def validate_expires_at(self, value: Any) -> Any:
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("must be in the future")
        return value

    def validate_allowed_models(self, value: list[str]) -> list[str]:
        models = list(dict.fromkeys(value))
        if refused := unknown_models_message(models):
            raise serializers.ValidationError(refused, code="unknown_model")
        return models


class CreatedApiKeySerializer(ApiKeySerializer):
    api_key = serializers.CharField(help_text="The full key. Shown once; store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "api_key"]
        read_only_fields = fields


class TenantSettingsSerializer(StrictModelSerializer[Tenant]):
    """The tenant's settings that its admin keys may change."""

    cors_allowed_origins = serializers.ListField(
        child=serializers.RegexField(f"^{ORIGIN_PATTERN.pattern}$", max_length=262),
        max_length=MAX_CORS_ORIGINS,
        required=False,
        help_text=(
            "Origins (scheme://host[:port]) whose browser pages may call /v1 and /api with this "
            "tenant's keys; empty: none (CORS off). Stored lowercased and sorted."
        ),
    )

    outbound_allowed_hosts = serializers.ListField(
        child=serializers.CharField(max_length=254),
        max_length=MAX_OUTBOUND_HOSTS,
        required=False,
        help_text=(
            "Hosts agents' tools and URL ingestion may reach (api.example.com; .example.com with its "
            "subdomains); empty: any public host. Private and loopback addresses stay refused."
        ),
    )
    outbound_allowed_ports = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=65535),
        max_length=MAX_OUTBOUND_PORTS,
        required=False,
        help_text="Ports they may reach, within the platform's; empty: the default (80 and 443).",
    )

    class Meta:
        model = Tenant
        fields = ["cors_allowed_origins", "outbound_allowed_hosts", "outbound_allowed_ports", "updated_at"]
        read_only_fields = ["updated_at"]
