"""Stored responses of the Responses API (/v1/responses): tenant content, in the
tenant's schema (TENANT_APPS)."""

from __future__ import annotations

from django.db import models


class StoredResponse(models.Model):
    """One Response created with `store` on: what it answered, and every item of
    the conversation it was answered after (the earlier turns of its
    `previous_response_id` chain, then its own input), so the next turn reads
    one row to continue it."""

    response_id = models.CharField(max_length=64, unique=True)
    # ApiKey lives in the public schema: an id, not a foreign key across schemas.
    api_key_id = models.BigIntegerField(null=True, blank=True)
    previous_response_id = models.CharField(max_length=64, blank=True)
    input_items = models.JSONField(help_text="The conversation's items before the answer, with ids.")
    response = models.JSONField(help_text="The Response object as answered.")
    created_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.response_id
