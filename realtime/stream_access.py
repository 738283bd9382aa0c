"""Who may read a stream: whoever may read the REST resource behind it.

A stream id starts with its kind (realtime/streams.py `new_stream_id`), and the
kind names the resource the stream follows. A socket on the stream needs what
that resource's API needs: the same key scope and the same feature flag. A kind
listed nowhere here needs the admin scope: a new kind of stream stays closed to
narrower keys until it is given its rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import GatewayError
from tenants.models import ApiKey, ApiKeyScope


@dataclass(frozen=True)
class StreamAccess:
    """The scope and the flag reading a kind of stream needs, as `resource` does."""

    scope: ApiKeyScope
    flag: str | None
    resource: str


CHAT_ACCESS = StreamAccess(ApiKeyScope.INFERENCE, None, "POST /v1/chat/completions")
ACCESS_BY_KIND = {
    "chat": CHAT_ACCESS,
    "run": StreamAccess(ApiKeyScope.ADMIN, "agents", "GET /api/v1/runs/{id}"),
    "ingest": StreamAccess(ApiKeyScope.ADMIN, "ingestion", "GET /api/v1/documents/{id}"),
    "exp": StreamAccess(ApiKeyScope.ADMIN, "evals", "GET /api/v1/experiments/{id}"),
}
UNLISTED_ACCESS = StreamAccess(ApiKeyScope.ADMIN, None, "every stream of an unlisted kind")


def access_to(stream_id: str) -> StreamAccess:
    """What reading `stream_id` needs, from its kind."""
    return ACCESS_BY_KIND.get(stream_id.partition("_")[0], UNLISTED_ACCESS)


def insufficient_scope(access: StreamAccess) -> GatewayError:
    message = (
        f"This API key lacks the `{access.scope}` scope, which reading this stream needs, "
        f"as {access.resource} does."
    )
    return GatewayError(403, message, "permission_error", "insufficient_scope")


def require_scope(api_key: ApiKey, access: StreamAccess) -> None:
    """Raise the 403 GatewayError unless `api_key` has the scope `access` needs."""
    if not api_key.has_scope(access.scope):
        raise insufficient_scope(access)
