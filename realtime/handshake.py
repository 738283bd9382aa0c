"""Who opens a WebSocket, decided from the handshake before it is accepted.

Two ways in: an API key in `Authorization: Bearer` (servers), or a stream
token in the `token` query parameter (browsers, realtime/tokens.py; a token
that names an origin is refused from any other Origin). Either way the key
must be usable and pass the rule of what the socket reads
(realtime/stream_access.py): the chat socket, like /v1, needs `inference`; a
stream needs the scope and the feature flag of the REST resource behind it.
A token the dashboard minted for one stream carries the page's own check of
its member instead of the key's scope. Anything else is a
HandshakeRefusedError, answered before accept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async

from flags import is_enabled
from gateway.auth import authenticate
from gateway.errors import GatewayError
from gateway.service import loop_clients
from realtime.stream_access import CHAT_ACCESS, StreamAccess, insufficient_scope, require_scope
from realtime.tokens import take_stream_token
from tenants.models import ApiKey
from tenants.selectors import usable_api_key_by_id


class HandshakeRefusedError(Exception):
    """Refuse the handshake with this HTTP status and OpenAI-shaped error."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(frozen=True)
class Principal:
    """The key a socket acts as, and the tenant schema its streams live in."""

    api_key: ApiKey

    @property
    def schema_name(self) -> str:
        return self.api_key.tenant.schema_name


def header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def query_parameters(scope: dict[str, Any]) -> dict[str, str]:
    parsed = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"))
    return {name: values[-1] for name, values in parsed.items()}


INVALID_TOKEN = GatewayError(
    401, "Unknown, used, expired or mismatched stream token.", "invalid_request_error", "invalid_stream_token"
)
MISSING_CREDENTIALS = GatewayError(
    401,
    "Send an API key as 'Authorization: Bearer YOUR_KEY', or a stream token as ?token=...",
    "invalid_request_error",
    "missing_api_key",
)


def feature_disabled(flag: str) -> GatewayError:
    message = f"The {flag!r} feature is not enabled for this workspace."
    return GatewayError(403, message, "permission_error", "feature_disabled")


async def authorize(
    scope: dict[str, Any], purpose: str, stream_id: str | None = None, access: StreamAccess = CHAT_ACCESS
) -> Principal:
    """The principal of a handshake for `purpose` (and `stream_id`), allowed what `access`
    asks; raises HandshakeRefusedError."""
    authorization = header(scope, b"authorization")
    token = query_parameters(scope).get("token")
    try:
        if authorization:
            api_key = await key_for_header(authorization, access)
        elif token:
            api_key = await key_for_token(token, purpose, stream_id, header(scope, b"origin"), access)
        else:
            raise HandshakeRefusedError(MISSING_CREDENTIALS)
        if access.flag is not None and not await sync_to_async(is_enabled, thread_sensitive=False)(
            access.flag, api_key.tenant
        ):
            raise feature_disabled(access.flag)
    except GatewayError as error:
        raise HandshakeRefusedError(error) from None
    return Principal(api_key)


async def key_for_header(authorization: str, access: StreamAccess) -> ApiKey:
    try:
        return await authenticate(loop_clients().keys, authorization, access.scope)
    except GatewayError as error:
        if error.code == "insufficient_scope":
            raise insufficient_scope(access) from None
        raise


async def key_for_token(
    token: str, purpose: str, stream_id: str | None, origin: str | None, access: StreamAccess
) -> ApiKey:
    claims = await take_stream_token(token)
    if claims is None or not claims.allows(purpose, stream_id, origin.lower() if origin else None):
        raise INVALID_TOKEN
    api_key = await sync_to_async(usable_api_key_by_id, thread_sensitive=False)(
        claims.api_key_id, claims.tenant_id
    )
    if api_key is None:
        raise INVALID_TOKEN
    if not claims.checked_by_page(stream_id):
        require_scope(api_key, access)
    return api_key
