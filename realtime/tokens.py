"""Short-lived, single-purpose, single-use stream tokens for browsers.

A browser cannot set an Authorization header on a WebSocket, and a long-lived
API key must never travel in a URL. So a server holding a key mints a token
(`POST /v1/stream-tokens`, or the dashboard for its playground) and hands it
to the browser, which connects with `?token=...`. A token:

- lives REALTIME_STREAM_TOKEN_SECONDS (60 s) and works for one handshake
  (taken with GETDEL, so two connections can never share it);
- opens one kind of socket (`chat.completions` or `streams`), and, when it
  names a stream, only that stream;
- acts as the key that minted it (its tenant, limits and budget), and stops
  working when that key is revoked or expires;
- opens a stream only if that key has the stream's scope
  (realtime/stream_access.py), unless the dashboard minted it for that one
  stream (`page_checked`): the page checked its signed-in member instead, and
  the key only names whom the work is attributed to;
- when it names an origin (tokens the dashboard mints always do), is
  refused on a handshake from any other Origin.

Only a SHA-256 of the token is stored, under `rt:token:<digest>`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from django.conf import settings

from aiaas.cors import ORIGIN_PATTERN
from aiaas.redis_clients import async_client, sync_client
from aiaas.redis_keys import redis_key
from realtime.streams import is_stream_id
from tenants.models import ApiKey

PURPOSES = ("chat.completions", "streams")
TOKEN_PREFIX = "st_"  # noqa: S105 - a format, not a secret
TOKEN_PATTERN = re.compile(r"st_[A-Za-z0-9_-]{43}")


class InvalidTokenRequestError(ValueError):
    """A token request that names an unknown purpose, a malformed stream id or origin."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class StreamTokenClaims:
    """What a token allows: whose key it acts as, for which socket, stream and origin."""

    tenant_id: int
    schema_name: str
    api_key_id: int
    purpose: str
    stream_id: str | None = None
    origin: str | None = None
    # Set only by dashboard pages, never from an API request's body.
    page_checked: bool = False

    def checked_by_page(self, stream_id: str | None) -> bool:
        """Whether a dashboard page, not the key's scope, vouches for reading `stream_id`."""
        return self.page_checked and self.stream_id is not None and self.stream_id == stream_id

    def allows(self, purpose: str, stream_id: str | None, origin: str | None) -> bool:
        return (
            self.purpose == purpose
            and (self.stream_id is None or self.stream_id == stream_id)
            and (self.origin is None or self.origin == origin)
        )


def token_key(token: str) -> str:
    return redis_key("rt", "token", hashlib.sha256(token.encode()).hexdigest())


def claims_for(api_key: ApiKey, body: dict[str, Any]) -> StreamTokenClaims:
    """Validate a token request's body for `api_key`; raises InvalidTokenRequestError."""
    unknown = set(body) - {"purpose", "stream_id", "origin"}
    if unknown:
        raise InvalidTokenRequestError(f"Unknown field `{sorted(unknown)[0]}`.", sorted(unknown)[0])
    purpose = body.get("purpose")
    if purpose not in PURPOSES:
        raise InvalidTokenRequestError(f"`purpose` must be one of {', '.join(PURPOSES)}.", "purpose")
    stream_id = body.get("stream_id")
    if "stream_id" in body and (not isinstance(stream_id, str) or not is_stream_id(stream_id)):
        raise InvalidTokenRequestError("`stream_id` is not a stream id.", "stream_id")
    if stream_id is not None and purpose != "streams":
        raise InvalidTokenRequestError("`stream_id` applies to the `streams` purpose only.", "stream_id")
    origin = body.get("origin")
    if "origin" in body and (not isinstance(origin, str) or not ORIGIN_PATTERN.fullmatch(origin)):
        raise InvalidTokenRequestError("`origin` must read scheme://host[:port].", "origin")
    return StreamTokenClaims(
        tenant_id=api_key.tenant_id,
        schema_name=api_key.tenant.schema_name,
        api_key_id=api_key.pk,
        purpose=purpose,
        stream_id=stream_id,
        origin=origin.lower() if origin else None,
    )


async def mint_stream_token(claims: StreamTokenClaims) -> dict[str, Any]:
    """Store a new token for `claims` (with the streams it opens); the API's answer
    (the token is shown only here)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    await async_client("realtime").set(
        token_key(token), orjson.dumps(asdict(claims)), ex=settings.REALTIME_STREAM_TOKEN_SECONDS
    )
    return minted(token, claims)


def mint_stream_token_sync(claims: StreamTokenClaims) -> dict[str, Any]:
    """`mint_stream_token` for synchronous code (the dashboard)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    sync_client("realtime").set(
        token_key(token), orjson.dumps(asdict(claims)), ex=settings.REALTIME_STREAM_TOKEN_SECONDS
    )
    return minted(token, claims)


def minted(token: str, claims: StreamTokenClaims) -> dict[str, Any]:
    lifetime = settings.REALTIME_STREAM_TOKEN_SECONDS
    return {
        "object": "stream_token",
        "token": token,
        "purpose": claims.purpose,
        "stream_id": claims.stream_id,
        "origin": claims.origin,
        "expires_in": lifetime,
        "expires_at": int(time.time()) + lifetime,
    }


async def take_stream_token(token: str) -> StreamTokenClaims | None:
    """The token's claims, once: the token is deleted as it is read. None when unknown or used."""
    if not TOKEN_PATTERN.fullmatch(token):
        return None
    stored = await async_client("realtime").getdel(token_key(token))
    if stored is None:
        return None
    return StreamTokenClaims(**orjson.loads(stored))
