"""Request logs, created in a tenant's schema."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django_tenants.utils import tenant_context
from factory.declarations import LazyFunction, Sequence
from factory.django import DjangoModelFactory

from request_logs.models import RequestLog
from testing.tenants import TenantFixture


class RequestLogFactory(DjangoModelFactory[RequestLog]):
    """Creates in the current schema: call it inside `tenant_context`."""

    class Meta:
        model = RequestLog

    request_id = Sequence(lambda n: f"req_factory{n:08d}")
    model = "sim-small"
    request_body = LazyFunction(
        lambda: {"model": "sim-small", "messages": [{"role": "user", "content": "Hi"}]}
    )
    response_text = "Hello!"
    status = 200
    created_at = LazyFunction(timezone.now)


def make_request_log(tenant: TenantFixture, **fields: Any) -> RequestLog:
    with tenant_context(tenant.tenant):
        return RequestLogFactory.create(**fields)
