"""Batches made directly, for tests that need one without running it."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django_tenants.utils import tenant_context

from batches.models import Batch, BatchEndpoint
from testing.tenants import TenantFixture


def make_batch(tenant: TenantFixture) -> Batch:
    """A batch of no lines, `validating`, that no worker runs."""
    with tenant_context(tenant.tenant):
        return Batch.objects.create(
            endpoint=BatchEndpoint.CHAT_COMPLETIONS,
            input_file_id="file-none",
            api_key_id=tenant.provisioned.issued_key.api_key.pk,
            expires_at=timezone.now() + timedelta(hours=24),
        )
