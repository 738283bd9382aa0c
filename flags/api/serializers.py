from __future__ import annotations

from typing import Any

from rest_framework import serializers

from flags.rules import Rule


class EvaluatedFlagSerializer(serializers.Serializer[Any]):
    object = serializers.CharField(default="feature_flag", help_text="Always `feature_flag`.")
    key = serializers.CharField()
    enabled = serializers.BooleanField()
    rule = serializers.ChoiceField(
        choices=[rule.value for rule in Rule],
        help_text="What decided it: an override for this tenant, one for its plan, the "
        "percentage rollout, or the flag's default.",
    )


class EvaluatedFlagListSerializer(serializers.Serializer[Any]):
    object = serializers.CharField(default="list", help_text="Always `list`.")
    data_ = EvaluatedFlagSerializer(many=True)

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # `data` is a Serializer property: declared `data_`.
        return {name.removesuffix("_"): field for name, field in super().get_fields().items()}
