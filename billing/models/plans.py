"""Plans (public schema): what a tenant pays and the limits it gets. Staff edit
them in the admin; a change applies to the gateway at once: every write of a
plan announces itself once committed (tenants/gateway_cache.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from tenants.models import Tenant, forget_tenants_after_commit


class CapMode(models.TextChoices):
    # Hard: requests past the included tokens are refused (429) until the period ends.
    HARD = "hard", "Hard: refuse past the included tokens"
    # Soft: usage past them is billed as overage.
    SOFT = "soft", "Soft: bill overage"


class PlanQuerySet(models.QuerySet["Plan"]):
    """An update tells the gateways to reload the plans' tenants' keys, which they
    cache with the plan (a plan with tenants cannot be deleted)."""

    def update(self, **kwargs: Any) -> int:
        plan_ids = list(self.values_list("pk", flat=True))
        updated = super().update(**kwargs)
        forget_tenants_after_commit(Tenant.objects.filter(plan_id__in=plan_ids).values_list("pk", flat=True))
        return updated


class Plan(models.Model):
    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    is_default = models.BooleanField(default=False, help_text="Given to tenants that sign up without a plan.")
    # Rate limits: defaults for each of the tenant's keys, and for the tenant as a whole.
    key_requests_per_minute = models.PositiveIntegerField(default=60, validators=[MinValueValidator(1)])
    key_tokens_per_minute = models.PositiveIntegerField(default=100_000, validators=[MinValueValidator(1)])
    tenant_requests_per_minute = models.PositiveIntegerField(default=300, validators=[MinValueValidator(1)])
    tenant_tokens_per_minute = models.PositiveIntegerField(default=500_000, validators=[MinValueValidator(1)])
    # Hard caps per billing period; empty means no cap.
    monthly_token_budget = models.PositiveBigIntegerField(null=True, blank=True)
    monthly_spend_budget_usd = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(Decimal(0))]
    )
    # Price and what it includes, per billing period.
    monthly_price_usd = models.DecimalField(
        max_digits=12, decimal_places=2, default=Decimal(0), validators=[MinValueValidator(Decimal(0))]
    )
    included_tokens = models.PositiveBigIntegerField(default=0, help_text="Tokens included each period.")
    included_requests = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Requests included each period; empty: requests are not counted."
    )
    cap_mode = models.CharField(max_length=4, choices=CapMode.choices, default=CapMode.SOFT)
    default_max_output_tokens = models.PositiveIntegerField(
        default=1024,
        validators=[MinValueValidator(1)],
        help_text="Sent upstream as max_tokens when a request sets no limit, so what a request "
        "may produce is bounded and reserved.",
    )
    overage_usd_per_million_tokens = models.DecimalField(
        max_digits=12,
        decimal_places=4,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0))],
        help_text="Price of each million tokens past the included ones (soft cap).",
    )
    batch_discount_percent = models.PositiveSmallIntegerField(
        default=50,
        validators=[MaxValueValidator(100)],
        help_text="Off the list price of each batch request (/v1/batches).",
    )
    # Stripe: the flat recurring price, and the metered price of the token meter.
    stripe_price_id = models.CharField(max_length=255, blank=True)
    stripe_metered_price_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PlanQuerySet.as_manager()

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="billing_plan_single_default"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Saved, and once committed the gateways reload its tenants' keys."""
        adding = self._state.adding
        super().save(*args, **kwargs)
        if not adding:
            forget_tenants_after_commit(self.tenants.values_list("pk", flat=True))

    @property
    def batch_price_factor(self) -> Decimal:
        """What a batch request is billed of its list price."""
        return Decimal(100 - self.batch_discount_percent) / 100
