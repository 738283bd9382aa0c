"""Plans (public schema): the limits a tenant gets. Prices come with the billing issue."""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone


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
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="billing_plan_single_default"
            ),
        ]

    def __str__(self) -> str:
        return self.name
