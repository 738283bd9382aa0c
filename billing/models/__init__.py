from billing.models.plans import Plan
from billing.models.usage import UsageEvent

__all__ = ["Plan", "UsageEvent"]
