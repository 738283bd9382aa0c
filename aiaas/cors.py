"""CORS for /v1 and /api, decided once for both servers (Django's middleware,
the gateway's ASGI wrapper); docs/security.md says why it reads as it does.

Off by default: an origin is allowed only when a tenant lists it.

- A preflight carries no key, so no tenant: it is answered (204) for an
  origin that *some* active tenant allows, and refused (403) otherwise. It
  grants nothing by itself.
- The actual request carries the key: its answer names the origin in
  Access-Control-Allow-Origin only when the key's tenant allows it, so a page
  on another tenant's origin cannot read it.
- Never `Access-Control-Allow-Credentials`: the API authenticates by header,
  not cookie, and no cookie of ours may ride along.

Pure functions over the allowed origins the caller passes in: aiaas imports no
domain app.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping

# scheme://host[:port], as a browser writes Origin; realtime/tokens.py binds tokens to the same form.
ORIGIN_PATTERN = re.compile(r"https?://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?")
ALLOWED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Header names only (RFC 9110 tokens), as a preflight lists them.
HEADER_LIST_PATTERN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*")
# What a page may read of an answer besides the safelisted headers.
EXPOSED_HEADERS = ", ".join(
    (
        "retry-after",
        "x-request-id",
        "x-client-request-id",
        "x-aiaas-model",
        "x-aiaas-tier",
        "x-aiaas-route-reason",
        "x-aiaas-overhead-ms",
        "idempotent-replayed",
    )
)
PREFLIGHT_MAX_AGE_SECONDS = 600


def normalized_origin(origin: str) -> str | None:
    """The origin lowercased, or None when it is not scheme://host[:port]."""
    return origin.lower() if ORIGIN_PATTERN.fullmatch(origin) else None


def normalized_origins(origins: Iterable[str]) -> list[str]:
    """Origins as stored: lowercased, unique, sorted; ValueError names the first malformed one."""
    normalized = set()
    for origin in origins:
        lowered = normalized_origin(origin)
        if lowered is None:
            raise ValueError(f"{origin!r} is not an origin: write scheme://host[:port].")
        normalized.add(lowered)
    return sorted(normalized)


def is_preflight(method: str, headers: Mapping[str, str]) -> bool:
    """OPTIONS naming an Origin and an Access-Control-Request-Method (header names lowercased)."""
    return method == "OPTIONS" and "origin" in headers and "access-control-request-method" in headers


def preflight_headers(headers: Mapping[str, str], allowed_origins: Collection[str]) -> dict[str, str] | None:
    """The 204's headers for a preflight (header names lowercased), or None to refuse it.

    `allowed_origins`: every origin some active tenant allows.
    """
    origin = normalized_origin(headers.get("origin", ""))
    method = headers.get("access-control-request-method", "")
    requested = headers.get("access-control-request-headers", "").strip()
    if origin is None or origin not in allowed_origins or method not in ALLOWED_METHODS:
        return None
    if requested and not HEADER_LIST_PATTERN.fullmatch(requested):
        return None
    answer = {
        "access-control-allow-origin": origin,
        "access-control-allow-methods": ", ".join(ALLOWED_METHODS),
        "access-control-max-age": str(PREFLIGHT_MAX_AGE_SECONDS),
        "vary": "Origin",
    }
    if requested:
        answer["access-control-allow-headers"] = requested.lower()
    return answer


def response_headers(origin: str | None, tenant_origins: Collection[str]) -> dict[str, str]:
    """The CORS headers of an answer to a request from `origin` (None: no Origin
    header), given the origins the request's tenant allows (empty: no tenant)."""
    if origin is None:
        return {}
    normalized = normalized_origin(origin)
    if normalized is None or normalized not in tenant_origins:
        return {"vary": "Origin"}
    return {
        "access-control-allow-origin": normalized,
        "access-control-expose-headers": EXPOSED_HEADERS,
        "vary": "Origin",
    }
