"""The tenant's own logged traffic that cases can be made of: successful chat requests
logged whole, never the evals' own calls (whose request ids are
`CaseResult.request_id_for`'s `req_exp_...`), so no suite grades its own judge."""

from __future__ import annotations

from django.db.models import QuerySet

from request_logs.models import RequestLog

EVAL_REQUEST_PREFIX = "req_exp_"


def whole_chat_requests() -> QuerySet[RequestLog]:
    """Newest first."""
    return (
        RequestLog.objects.filter(status=200, request_body__has_key="messages")
        .exclude(request_id__startswith=EVAL_REQUEST_PREFIX)
        .exclude(request_body__has_key="truncated")
        .order_by("-created_at", "-id")
    )
