"""Sentry, safe by default: an event carries no frame locals, no request body, no
cookies, no personal data, no model inputs or outputs, and no secret anywhere in
it (headers, keys and tokens in any string: aiaas/redaction.py)."""

from __future__ import annotations

from typing import Any

import sentry_sdk

from aiaas.redaction import scrub

# Parts of an event's request that may hold a prompt or a credential whatever their shape.
DROPPED_REQUEST_PARTS = ("data", "cookies", "env")


def init_sentry(dsn: str, traces_sample_rate: float) -> None:
    """`data_collection` is sentry-sdk's successor of send_default_pii=False,
    include_local_variables=False and max_request_body_size="never" (it warns on
    the first); it also keeps prompts and answers out of its AI integrations' spans."""
    sentry_sdk.init(
        dsn=dsn,
        data_collection={
            "user_info": False,
            "cookies": {"mode": "off"},
            "http_bodies": [],
            "url_query_params": {"mode": "off"},
            "gen_ai": {"inputs": False, "outputs": False},
            "database_query_data": False,
            "stack_frame_variables": False,
        },
        traces_sample_rate=traces_sample_rate,
        before_send=scrub_event,
        before_send_transaction=scrub_event,
    )


def scrub_event(event: Any, hint: Any) -> Any:
    """The event without request bodies and cookies, every secret redacted."""
    request = event.get("request")
    if isinstance(request, dict):
        for part in DROPPED_REQUEST_PARTS:
            request.pop(part, None)
    return scrub(event)
