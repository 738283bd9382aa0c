"""Our OpenFeature provider: boolean flags resolved per tenant from the cached table.

The evaluation context's targeting key is the tenant's id and its `plan_id`
attribute the tenant's plan (flags/evaluation.py builds it). Anything else, a
missing tenant or a flag we do not have, is an error OpenFeature answers with the
caller's default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

from flags.cache import current_table
from flags.rules import Rule

T = TypeVar("T")

REASONS = {
    Rule.TENANT_OVERRIDE: Reason.TARGETING_MATCH,
    Rule.PLAN_OVERRIDE: Reason.TARGETING_MATCH,
    Rule.ROLLOUT: Reason.SPLIT,
    Rule.DEFAULT: Reason.DEFAULT,
}


class TenantFlagProvider(AbstractProvider):
    def get_metadata(self) -> Metadata:
        return Metadata(name="aiaas-tenant-flags")

    def resolve_boolean_details(
        self, flag_key: str, default_value: bool, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[bool]:
        context = evaluation_context or EvaluationContext()
        if context.targeting_key is None or not context.targeting_key.isdigit():
            return error(default_value, ErrorCode.TARGETING_KEY_MISSING, "a flag is evaluated for a tenant")
        rule = current_table().get(flag_key)
        if rule is None:
            return error(default_value, ErrorCode.FLAG_NOT_FOUND, f"no flag {flag_key!r}")
        plan_id = context.attributes.get("plan_id")
        resolution = rule.resolve(int(context.targeting_key), plan_id if isinstance(plan_id, int) else None)
        return FlagResolutionDetails(
            value=resolution.enabled,
            reason=REASONS[resolution.rule],
            variant="on" if resolution.enabled else "off",
            flag_metadata={"rule": resolution.rule.value},
        )

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return not_boolean(default_value)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return not_boolean(default_value)

    def resolve_float_details(
        self, flag_key: str, default_value: float, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[float]:
        return not_boolean(default_value)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        return not_boolean(default_value)


def not_boolean(default_value: T) -> FlagResolutionDetails[T]:
    return error(default_value, ErrorCode.TYPE_MISMATCH, "every flag here is a boolean")


def error(default_value: T, code: ErrorCode, message: str) -> FlagResolutionDetails[T]:
    return FlagResolutionDetails(
        value=default_value, reason=Reason.ERROR, error_code=code, error_message=message
    )
