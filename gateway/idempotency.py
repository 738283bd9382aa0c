"""Idempotency keys on /v1: the Starlette adapter with refusals raised as GatewayError,
so the endpoint wrapper renders, logs and meters them like every other error."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response

from aiaas.idempotency import IdempotencyError, IdempotencyStore
from aiaas.idempotency import starlette as adapter
from gateway.errors import GatewayError

__all__ = ["IdempotencyStore", "gateway_error", "idempotent"]


def gateway_error(refused: IdempotencyError) -> GatewayError:
    return GatewayError(
        refused.status, refused.message, refused.error_type, refused.code, retry_after=refused.retry_after
    )


async def idempotent(
    store: IdempotencyStore,
    request: Request,
    tenant_id: int,
    body: bytes,
    handler: adapter.Handler,
    *,
    principal: str = "",
    headers: Callable[[], Mapping[str, str]] | None = None,
) -> Response:
    """`aiaas.idempotency.starlette.idempotent`, refusing with GatewayError."""
    return await adapter.idempotent(
        store, request, tenant_id, body, handler, principal=principal, headers=headers, refuse=gateway_error
    )
