"""The analytics answers the API serves: a tenant's figures from the read model,
kept briefly in Redis per tenant and query.

An answer is cached for settings.ANALYTICS_CACHE_SECONDS under a key carrying
the tenant (`analytics:{t<id>}:<kind>:<digest of the query>`): a dashboard
polling every few seconds costs one read-model query per window. Redis failing
is not an error here; the answer is computed without it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import redis
from django.conf import settings

from aiaas.redis_clients import sync_client
from aiaas.redis_keys import tenant_key
from analytics import rollups
from analytics.backends import get_backend
from analytics.backends.base import Figures, Point, Query, figures_json

logger = logging.getLogger(__name__)
Answer = dict[str, Any]


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def summary(query: Query) -> Answer:
    """`figures_json` of the range, with the range and how fresh the read model is."""
    return cached(query, "summary", lambda: summary_answer(query))


def timeseries(query: Query) -> Answer:
    """One point per bucket of the range (and group seen in it), in time order."""
    return cached(query, "timeseries", lambda: timeseries_answer(query))


def summary_answer(query: Query) -> Answer:
    progress = rollups.progress()
    return {
        "object": "analytics.summary",
        "from": iso(query.start),
        "to": iso(query.end),
        **figures_json(get_backend().summary(query)),
        "freshness": {
            "watermark": progress.watermark_id,
            "pending_rows": progress.pending_rows,
            "lag_seconds": round(progress.lag_seconds, 3),
        },
    }


def timeseries_answer(query: Query) -> Answer:
    return {
        "object": "list",
        "from": iso(query.start),
        "to": iso(query.end),
        "granularity": query.granularity,
        "group_by": query.group_by,
        "data": [point_json(point) for point in every_bucket(query, get_backend().timeseries(query))],
    }


# Beyond this many points (31 days of hours for 26 groups) a range grouped by key or
# model is answered with its points that have requests only: zeros for hundreds of keys
# would be most of a very large answer.
MAX_FILLED_POINTS = 20_000


def every_bucket(query: Query, points: list[Point]) -> list[Point]:
    """The backend's points (buckets with requests) and a zero point for every other
    bucket of the range, per group seen in it: a chart's line falls to zero where
    nothing happened instead of joining the points on either side (up to
    MAX_FILLED_POINTS)."""
    step = timedelta(hours=1) if query.granularity == "hour" else timedelta(days=1)
    first = query.start.replace(minute=0, second=0, microsecond=0)
    if query.granularity == "day":
        first = first.replace(hour=0)
    buckets = []
    while first < query.end:
        buckets.append(first)
        first += step
    groups = sorted({point.group for point in points}, key=lambda g: (g is not None, g or ""))
    if len(buckets) * max(1, len(groups)) > MAX_FILLED_POINTS:
        return points
    found = {(point.t, point.group): point for point in points}
    every = [(t, group) for t in buckets for group in (groups if query.group_by else [None])]
    # A point off these buckets (none, with the shipped backends) is kept, not dropped.
    every += sorted(set(found) - set(every), key=lambda key: (key[0], key[1] is not None, key[1] or ""))
    return [found.get(key) or Point(*key, Figures()) for key in sorted(every, key=lambda key: key[0])]


def point_json(point: Point) -> Answer:
    return {"t": iso(point.t), "group": point.group, **figures_json(point.figures)}


def cache_key(query: Query, kind: str) -> str:
    described = json.dumps(asdict(query), sort_keys=True, default=str)
    return tenant_key("analytics", query.tenant_id, kind, hashlib.sha256(described.encode()).hexdigest()[:32])


def cached(query: Query, kind: str, compute: Callable[[], Answer]) -> Answer:
    key, client = cache_key(query, kind), sync_client("default")
    try:
        hit = client.get(key)
    except redis.RedisError:
        logger.warning("analytics: cache unavailable, answering without it", exc_info=True)
        return compute()
    if hit is not None:
        answer: Answer = json.loads(hit)
        return answer
    answer = compute()
    try:
        client.set(key, json.dumps(answer), ex=settings.ANALYTICS_CACHE_SECONDS)
    except redis.RedisError:
        logger.warning("analytics: answer not cached", exc_info=True)
    return answer
