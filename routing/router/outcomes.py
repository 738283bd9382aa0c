"""What the router learns from and reports: outcomes, feedback and daily figures in Redis.

Keys, all per tenant (numbers only, no prompt text):
- router:outcomes:<tenant>  "<version>|<bucket>|<tier>:f" / ":n" / ":p": quality
  failures, observations and the sum of the predicted P(fail) per tier and
  bucket, the router's online learning state (config.Tally); and
  "<version>|score:<bin>|cheap|top|routed:...": the same per bin of the
  classifier's score for the cheapest and the top tier, and every routed
  request's count, from which the tenant's threshold is re-solved (adaptation.py);
- router:decision:<request id>  the decision behind a request, kept
  DECISION_TTL_SECONDS so feedback can be attributed to it (once), with the
  prompt's summary (ranking.py: its scores and hand features, base64) when
  the cheapest or the top tier served it;
- router-judged:{t<tenant>}:<version>  the newest judgements of the cheapest and
  the top tier, each with its prompt's summary, which re-rank the tenant's
  scores (ranking.py);
- router:canary:<tenant>  "<version>:f" / ":n" / ":cost" / ":requests": what the
  canary's sequential test reads;
- router:daily:<tenant>:<YYYY-MM-DD>  the dashboard's figures (DAILY_TTL_SECONDS).

A quality observation is a request whose first tier's answer was judged: by its
JSON schema (early exit), or later by the user's feedback. Requests nobody
judged teach nothing and are not counted as successes.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import redis
import redis.asyncio as aioredis
from django.utils import timezone
from redis.typing import EncodableT, FieldT

from aiaas.redis_keys import redis_key
from routing.router import ranking
from routing.router.adaptation import CHEAP, ROUTED, TOP, role, score_field
from routing.router.config import Tally, outcome_field
from routing.router.policy import Decision

DECISION_TTL_SECONDS = 7 * 24 * 3600
DAILY_TTL_SECONDS = 40 * 24 * 3600
# A tenant's judged prompts (ranking.py) outlive a quiet month, not a tenant that left.
JUDGED_TTL_SECONDS = 90 * 24 * 3600
MICROS = Decimal(1_000_000)
# Decision latency histogram buckets, in microseconds (the last is "more").
LATENCY_BUCKETS_US = (50, 100, 250, 500, 1000)


# These names predate the tenant hash tag (aiaas/redis_keys.py tenant_key); they
# hold what the router learned, so renaming them would forget it.
def outcomes_key(tenant_id: int) -> str:
    return redis_key("router", "outcomes", tenant_id)


def outcomes_key_pattern() -> str:
    """A SCAN pattern matching every tenant's outcomes key."""
    return redis_key("router", "outcomes", "*")


def decision_key(request_id: str) -> str:
    return redis_key("router", "decision", request_id)


def canary_key(tenant_id: int) -> str:
    return redis_key("router", "canary", tenant_id)


def daily_key(tenant_id: int, day: datetime.date) -> str:
    return redis_key("router", "daily", tenant_id, day.isoformat())


def latency_bucket(seconds: float) -> str:
    micros = seconds * 1_000_000
    for bound in LATENCY_BUCKETS_US:
        if micros <= bound:
            return f"decision_le_{bound}us"
    return f"decision_gt_{LATENCY_BUCKETS_US[-1]}us"


def decoded(raw: Any) -> dict[str, str]:
    """A Redis hash as read by a client that does not decode responses."""
    return {name.decode(): value.decode() for name, value in cast(Mapping[bytes, bytes], raw).items()}


TALLY_KINDS = {"f": 0, "n": 1, "p": 2}


def parse_outcomes(raw: Any) -> dict[str, Tally]:
    """router:outcomes:<tenant> as {"version|bucket|tier": Tally}."""
    return tallies({name: float(value) for name, value in decoded(raw).items()})


def tallies(fields: Mapping[str, float]) -> dict[str, Tally]:
    """The outcomes hash's "<field>:<kind>" values as {field: Tally}."""
    counts: dict[str, list[float]] = {}
    for name, value in fields.items():
        field, kind = name.rsplit(":", 1)
        if kind in TALLY_KINDS:
            counts.setdefault(field, [0.0, 0.0, 0.0])[TALLY_KINDS[kind]] = value
    return {field: Tally(*values) for field, values in counts.items()}


def tally_mapping(outcomes: dict[str, Tally]) -> dict[FieldT, EncodableT]:
    """The inverse of parse_outcomes: the hash's fields and values."""
    return {
        f"{field}:{kind}": tally[index]
        for field, tally in outcomes.items()
        for kind, index in TALLY_KINDS.items()
    }


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """One routed request, as settled by the gateway."""

    tenant_id: int
    request_id: str
    decision: Decision
    served_tier: int | None
    first_tier_failed: bool | None  # None: nobody judged it (yet)
    cost_usd: Decimal
    top_tier_cost_usd: Decimal
    expected_cost_usd: Decimal
    latency_ms: int


def observe(
    pipe: Any, tenant_id: int, decision: Decision | Mapping[str, str], failed: bool, day_key: str
) -> None:
    """Queue on `pipe` the writes of one quality observation of `decision`'s first tier."""
    if isinstance(decision, Decision):
        version, bucket, tier = decision.version, decision.bucket, decision.tier
        predicted, prior, is_canary = decision.predicted_failure, decision.prior, decision.is_canary
        score, end, summary = decision.score, scored_role(decision), decision.prompt_summary
    else:
        version, bucket, tier = decision["version"], decision["bucket"], int(decision["tier"])
        predicted, prior = float(decision["predicted"]), float(decision["prior"])
        is_canary = decision["canary"] == "1"
        # Decisions recorded before the tenant thresholds (adaptation.py) have no role.
        score, end = float(decision.get("score", 0)), decision.get("role") or None
        summary = base64.b64decode(decision.get("prompt_summary", ""))
    tally(pipe, tenant_id, outcome_field(version, bucket, tier), failed, prior)
    if end is not None:
        tally(pipe, tenant_id, score_field(version, score, end), failed, score if end == CHEAP else prior)
    if end is not None and summary:
        keep_judged(pipe, tenant_id, version, ranking.entry(summary, end == TOP, failed))
    pipe.hincrby(canary_key(tenant_id), f"{version}:n", 1)
    pipe.hincrby(canary_key(tenant_id), f"{version}:f", int(failed))
    pipe.hincrby(day_key, "quality_observed", 1)
    pipe.hincrby(day_key, "quality_failed", int(failed))
    pipe.hincrbyfloat(day_key, "predicted_failure_sum", predicted)
    pipe.hincrby(day_key, "canary_observed" if is_canary else "control_observed", 1)


def keep_judged(pipe: Any, tenant_id: int, version: str, judged: bytes) -> None:
    """Add a judgement of the cheapest or the top tier to the tenant's ranking
    (ranking.py), keeping the newest MAX_JUDGED."""
    key = ranking.judged_key(tenant_id, version)
    pipe.lpush(key, judged)
    pipe.ltrim(key, 0, ranking.MAX_JUDGED - 1)
    pipe.expire(key, JUDGED_TTL_SECONDS)


def tally(pipe: Any, tenant_id: int, field: str, failed: bool, predicted: float) -> None:
    pipe.hincrby(outcomes_key(tenant_id), f"{field}:n", 1)
    pipe.hincrby(outcomes_key(tenant_id), f"{field}:f", int(failed))
    pipe.hincrbyfloat(outcomes_key(tenant_id), f"{field}:p", predicted)


def count_routed(pipe: Any, tenant_id: int, decision: Decision) -> None:
    """Count the request in its score's bin: the tenant's traffic, judged or not."""
    if not decision.early_exit:
        pipe.hincrby(outcomes_key(tenant_id), f"{score_field(decision.version, decision.score, ROUTED)}:n", 1)


def scored_role(decision: Decision) -> str | None:
    """The decision's tier as the tenant threshold counts it (adaptation.role); early
    exits are judged on their JSON, not on the quality the threshold is for."""
    return None if decision.early_exit else role(decision.tier, decision.tiers)


async def record(client: aioredis.Redis, outcome: RequestOutcome) -> None:
    """Everything one routed request teaches and reports, in one round trip."""
    decision, tenant_id = outcome.decision, outcome.tenant_id
    end = scored_role(decision)
    day = daily_key(tenant_id, timezone.now().date())
    pipe = client.pipeline(transaction=False)
    pipe.hset(
        decision_key(outcome.request_id),
        mapping={
            "tenant": tenant_id,
            "version": decision.version,
            "bucket": decision.bucket,
            "tier": decision.tier,
            "canary": int(decision.is_canary),
            "predicted": decision.predicted_failure,
            "prior": decision.prior,
            "judged": int(outcome.first_tier_failed is not None),
            "score": decision.score,
            "role": end or "",
            "prompt_summary": base64.b64encode(decision.prompt_summary if end else b"").decode(),
        },
    )
    count_routed(pipe, tenant_id, decision)
    pipe.expire(decision_key(outcome.request_id), DECISION_TTL_SECONDS)
    pipe.hincrby(day, "routed", 1)
    pipe.hincrby(day, f"tier_{decision.tier}", 1)
    if outcome.served_tier is not None:
        pipe.hincrby(day, f"served_tier_{outcome.served_tier}", 1)
        pipe.hincrby(day, "escalated", int(outcome.served_tier != decision.tier))
    pipe.hincrby(day, "explored", int(decision.explored))
    pipe.hincrby(day, "early_exit", int(decision.early_exit))
    pipe.hincrby(day, "canary_requests", int(decision.is_canary))
    pipe.hincrby(day, latency_bucket(decision.decision_seconds), 1)
    pipe.hincrbyfloat(day, "decision_seconds_sum", decision.decision_seconds)
    pipe.hincrbyfloat(day, "novelty_sum", decision.novelty)
    pipe.hincrby(day, "cost_micros", int(outcome.cost_usd * MICROS))
    pipe.hincrby(day, "top_tier_cost_micros", int(outcome.top_tier_cost_usd * MICROS))
    pipe.hincrby(day, "expected_cost_micros", int(outcome.expected_cost_usd * MICROS))
    pipe.hincrby(day, "latency_ms_sum", outcome.latency_ms)
    pipe.hincrby(canary_key(tenant_id), f"{decision.version}:requests", 1)
    pipe.hincrby(canary_key(tenant_id), f"{decision.version}:cost", int(outcome.cost_usd * MICROS))
    if outcome.first_tier_failed is not None:
        observe(pipe, tenant_id, decision, outcome.first_tier_failed, day)
    pipe.expire(day, DAILY_TTL_SECONDS)
    await pipe.execute()


class FeedbackError(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


async def record_feedback(client: aioredis.Redis, tenant_id: int, request_id: str, good: bool) -> None:
    """A user's verdict on a routed request's answer: one quality observation of
    the tier that served it first. Another tenant's request is "not found"."""
    key = decision_key(request_id)
    decision = decoded(await client.hgetall(key))
    if decision.get("tenant") != str(tenant_id):
        raise FeedbackError(404, f"No routed request `{request_id}` in the last 7 days.", "request_not_found")
    if decision.get("judged") == "1" or not await client.hsetnx(key, "rated", int(good)):
        raise FeedbackError(409, f"The request `{request_id}` already has an outcome.", "already_judged")
    pipe = client.pipeline(transaction=False)
    observe(pipe, tenant_id, decision, not good, daily_key(tenant_id, timezone.now().date()))
    await pipe.execute()


def daily_figures(
    client: redis.Redis, tenant_id: int, days: int, last: datetime.date | None = None
) -> list[dict[str, Any]]:
    """`days` days of router figures up to `last` (today by default), oldest first
    (days without traffic included)."""
    last = last or timezone.now().date()
    dates = [last - datetime.timedelta(days=offset) for offset in range(days - 1, -1, -1)]
    pipe = client.pipeline(transaction=False)
    for day in dates:
        pipe.hgetall(daily_key(tenant_id, day))
    rows = []
    for day, raw in zip(dates, pipe.execute(), strict=True):
        values = {name: float(value) for name, value in decoded(raw).items()}
        rows.append({"date": day.isoformat(), **values})
    return rows


def canary_counts(client: redis.Redis, tenant_id: int) -> dict[str, dict[str, float]]:
    """Per version: failures (f), observations (n), requests and cost (micro-USD)."""
    versions: dict[str, dict[str, float]] = {}
    for name, value in decoded(client.hgetall(canary_key(tenant_id))).items():
        version, kind = name.rsplit(":", 1)
        versions.setdefault(version, {"f": 0.0, "n": 0.0, "requests": 0.0, "cost": 0.0})[kind] = float(value)
    return versions
