"""Feature flags, in the public schema: one row per flag, explicit overrides per plan
and per tenant, and an audit entry per change (flags/services.py writes them)."""

from __future__ import annotations

from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Flag(models.Model):
    key = models.SlugField(max_length=64, unique=True)
    description = models.TextField(blank=True)
    enabled_by_default = models.BooleanField(default=False)
    rollout_percentage = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(100)],
        help_text="On for this share of tenants (0-100, stable per tenant), off for the rest; "
        "empty: every tenant without an override gets the default.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.CheckConstraint(
                condition=Q(rollout_percentage__isnull=True) | Q(rollout_percentage__lte=100),
                name="flags_rollout_percentage_at_most_100",
            )
        ]

    def __str__(self) -> str:
        return self.key


class PlanOverride(models.Model):
    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="plan_overrides")
    plan = models.ForeignKey("billing.Plan", on_delete=models.CASCADE, related_name="flag_overrides")
    enabled = models.BooleanField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["flag", "plan"], name="flags_one_override_per_plan")]

    def __str__(self) -> str:
        return f"{self.flag_id} for plan {self.plan_id}: {'on' if self.enabled else 'off'}"


class TenantOverride(models.Model):
    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="tenant_overrides")
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="flag_overrides")
    enabled = models.BooleanField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["flag", "tenant"], name="flags_one_override_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.flag_id} for tenant {self.tenant_id}: {'on' if self.enabled else 'off'}"


class FlagChange(models.Model):
    """One change of a flag or its overrides: the flag's whole state before and after
    (null before its creation and after its deletion). Kept when the flag is deleted."""

    flag_key = models.CharField(max_length=64, db_index=True)
    actor = models.CharField(
        max_length=254, help_text="Who changed it: a staff member's email, or a command."
    )
    changed_at = models.DateTimeField(default=timezone.now, db_index=True)
    old_value = models.JSONField(null=True)
    new_value = models.JSONField(null=True)

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.flag_key} by {self.actor} at {self.changed_at:%Y-%m-%d %H:%M:%S}"
