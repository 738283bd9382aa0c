"""Stored requests: a tenant's prompts and outputs. In the tenant's schema (TENANT_APPS)."""

from __future__ import annotations

from django.db import models


class RequestLog(models.Model):
    """One /v1 request of a tenant with request logging on (Tenant.request_logging_enabled).

    Written only by the flusher (request_logs/services.py), exactly once per
    request id; deleted after the tenant's retention. `request_body` and
    `response_text` are bounded (services.MAX_REQUEST_BODY_BYTES and
    MAX_RESPONSE_TEXT_BYTES); a longer one is stored cut, with a marker.
    """

    request_id = models.CharField(max_length=128, unique=True)
    # ApiKey lives in the public schema: an id, not a foreign key across schemas.
    api_key_id = models.BigIntegerField(null=True, blank=True)
    model = models.CharField(max_length=200, blank=True)
    request_body = models.JSONField(help_text="The request as received (messages, parameters).")
    response_text = models.TextField(blank=True, help_text="The answer's text, or the error body.")
    status = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.request_id
