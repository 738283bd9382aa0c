"""Plans (public schema). Limits and prices are added by the billing issues."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Plan(models.Model):
    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    is_default = models.BooleanField(default=False, help_text="Given to tenants that sign up without a plan.")
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
