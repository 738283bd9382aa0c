"""Flags evaluated for a tenant in process, through OpenFeature's client API and our
provider (docs/decisions/0028). No query unless the flags changed since the last one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from openfeature import api
from openfeature.evaluation_context import EvaluationContext, EvaluationContextAttribute

from flags.cache import current_table
from flags.provider import TenantFlagProvider
from flags.rules import Rule

if TYPE_CHECKING:
    from tenants.models import Tenant

DOMAIN = "aiaas-flags"

# Ready before the first evaluation: a provider still initialising answers every default.
api.set_provider_and_wait(TenantFlagProvider(), domain=DOMAIN)
_client = api.get_client(domain=DOMAIN)


@dataclass(frozen=True)
class Evaluation:
    key: str
    enabled: bool
    rule: Rule


def is_enabled(key: str, tenant: Tenant) -> bool:
    """Whether `key` is on for `tenant`; off for a flag that does not exist."""
    return _client.get_boolean_value(key, False, tenant_context(tenant))


def evaluate_all(tenant: Tenant) -> list[Evaluation]:
    """Every flag as `tenant` gets it, by key."""
    context = tenant_context(tenant)
    evaluations = []
    for key in sorted(current_table()):
        details = _client.get_boolean_details(key, False, context)
        if details.error_code is None:  # else deleted since the table was read
            evaluations.append(Evaluation(key, details.value, Rule(str(details.flag_metadata["rule"]))))
    return evaluations


def tenant_context(tenant: Tenant) -> EvaluationContext:
    attributes: dict[str, EvaluationContextAttribute] = {}
    if tenant.plan_id is not None:
        attributes["plan_id"] = tenant.plan_id
    return EvaluationContext(targeting_key=str(tenant.pk), attributes=attributes)
