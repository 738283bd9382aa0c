"""The signed registry: versioned manifests of agents, tools, prompts and models.

The app is in SHARED_APPS and TENANT_APPS, so `Entry` exists in every schema:
the public schema holds the platform's entries (tools, models), a tenant's
schema holds the tenant's own (prompts). Which schema a query runs in is what
scopes it; there is no tenant column to forget (docs/decisions/0030).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Kind(models.TextChoices):
    AGENT = "agent"
    TOOL = "tool"
    PROMPT = "prompt"
    MODEL = "model"


# Kinds a tenant owns (kept in its schema); the others are the platform's (public schema).
TENANT_KINDS = frozenset({Kind.PROMPT, Kind.AGENT})


class State(models.TextChoices):
    DRAFT = "draft"
    STAGING = "staging"
    PRODUCTION = "production"
    # Was production until a newer version was promoted: what a rollback returns to.
    SUPERSEDED = "superseded"
    # Was production until rolled back: never returned to by a later rollback.
    ROLLED_BACK = "rolled_back"


class Entry(models.Model):
    """One immutable version of a manifest and its signature; only `state` changes.

    The signature covers the manifest's canonical JSON (registry/signing.py); an
    unsigned entry has an empty `key_id` and `signature`. At most one version of
    a kind and name is in production (a partial unique constraint).
    """

    kind = models.CharField(max_length=10, choices=Kind.choices)
    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    manifest = models.JSONField()
    key_id = models.CharField(max_length=100, blank=True)
    signature = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.DRAFT)
    created_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    promoted_at = models.DateTimeField(null=True, blank=True, help_text="When it last became production.")

    class Meta:
        ordering = ["kind", "name", "-version"]
        verbose_name_plural = "entries"
        constraints = [
            models.UniqueConstraint(fields=["kind", "name", "version"], name="registry_entry_version_unique"),
            models.UniqueConstraint(
                fields=["kind", "name"],
                condition=Q(state="production"),
                name="registry_entry_one_production",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.name} v{self.version} ({self.state})"

    @property
    def is_signed(self) -> bool:
        return bool(self.signature)


class Action(models.TextChoices):
    CREATED = "created"
    IMPORTED = "imported"
    SIGNED = "signed"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"


class AuditEvent(models.Model):
    """Who changed an entry, when, and from which state to which: written in the
    same transaction as the change."""

    entry = models.ForeignKey(Entry, on_delete=models.CASCADE, related_name="audit_events")
    action = models.CharField(max_length=20, choices=Action.choices)
    from_state = models.CharField(max_length=20, blank=True)
    to_state = models.CharField(max_length=20, blank=True)
    actor = models.CharField(max_length=200)
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.entry_id} by {self.actor}"
