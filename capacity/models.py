from __future__ import annotations

from django.db import models
from django.utils import timezone

from capacity.levels import Level, Source

LEVEL_CHOICES = [(level.value, level.value) for level in Level]
SOURCE_CHOICES = [(source.value, source.value) for source in Source]


class DegradeState(models.Model):
    """The platform's degrade level: one row (pk 1), written only by capacity.services."""

    SINGLETON_ID = 1

    level = models.CharField(max_length=10, choices=LEVEL_CHOICES, default=Level.NORMAL.value)
    source = models.CharField(max_length=10, choices=SOURCE_CHOICES, default=Source.AUTO.value)
    reason = models.CharField(max_length=500, blank=True)
    since = models.DateTimeField(default=timezone.now)
    set_by = models.CharField(max_length=254, blank=True, help_text="A staff user's email, or `auto`.")

    class Meta:
        verbose_name = "degrade state"

    def __str__(self) -> str:
        return f"{self.level} ({self.source})"


class DegradeChange(models.Model):
    """The audit log: one row per change of the level or of who controls it."""

    previous_level = models.CharField(max_length=10, choices=LEVEL_CHOICES)
    level = models.CharField(max_length=10, choices=LEVEL_CHOICES)
    source = models.CharField(max_length=10, choices=SOURCE_CHOICES)
    reason = models.CharField(max_length=500, blank=True)
    set_by = models.CharField(max_length=254, blank=True)
    # The measured signals when the evaluator decided (empty for staff changes).
    signals = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["-created_at"], name="capacity_change_created")]

    def __str__(self) -> str:
        return f"{self.previous_level} -> {self.level} ({self.source})"
