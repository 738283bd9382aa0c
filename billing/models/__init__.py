from billing.models.plans import CapMode, Plan
from billing.models.stripe import BillingAccount, EventStatus, StripeEvent, SubscriptionStatus
from billing.models.usage import UsageEvent, UsageRequestId

__all__ = [
    "BillingAccount",
    "CapMode",
    "EventStatus",
    "Plan",
    "StripeEvent",
    "SubscriptionStatus",
    "UsageEvent",
    "UsageRequestId",
]
