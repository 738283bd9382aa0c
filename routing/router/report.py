"""The router's figures for a tenant: tier mix, escalations, predicted vs actual
failure, cost against always using the top tier, decision latency, the canary."""

from __future__ import annotations

from datetime import date
from typing import Any

from aiaas.redis_clients import sync_client
from routing.models import DEFAULT_ROUTER_VERSION, TenantRouting
from routing.router import outcomes
from routing.router.outcomes import LATENCY_BUCKETS_US, MICROS

LATENCY_FIELDS = [f"decision_le_{bound}us" for bound in LATENCY_BUCKETS_US] + [
    f"decision_gt_{LATENCY_BUCKETS_US[-1]}us"
]


def ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def usd(micros: float) -> str:
    return f"{micros / float(MICROS):.6f}"


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over daily rows (outcomes.daily_figures)."""
    total: dict[str, float] = {}
    for row in rows:
        for name, value in row.items():
            if name != "date":
                total[name] = total.get(name, 0.0) + value
    routed = total.get("routed", 0.0)
    tiers = sorted(int(name.removeprefix("tier_")) for name in total if name.startswith("tier_"))
    observed = total.get("quality_observed", 0.0)
    cost, top = total.get("cost_micros", 0.0), total.get("top_tier_cost_micros", 0.0)
    return {
        "routed_requests": int(routed),
        "tier_mix": {str(tier): ratio(total[f"tier_{tier}"], routed) for tier in tiers},
        "escalation_rate": ratio(total.get("escalated", 0.0), routed),
        "early_exit_rate": ratio(total.get("early_exit", 0.0), routed),
        "exploration_rate": ratio(total.get("explored", 0.0), routed),
        "canary_share": ratio(total.get("canary_requests", 0.0), routed),
        "judged_requests": int(observed),
        # Misroutes: judged requests whose first tier failed (escalations and bad feedback).
        "misroute_rate": ratio(total.get("quality_failed", 0.0), observed),
        "predicted_failure_rate": ratio(total.get("predicted_failure_sum", 0.0), observed),
        "cost_usd": usd(cost),
        "expected_cost_usd": usd(total.get("expected_cost_micros", 0.0)),
        "top_tier_cost_usd": usd(top),
        "saved_usd": usd(top - cost),
        "saved_share": ratio(top - cost, top),
        "mean_latency_ms": ratio(total.get("latency_ms_sum", 0.0), routed),
        "mean_decision_ms": ratio(total.get("decision_seconds_sum", 0.0) * 1000, routed),
        "mean_novelty": ratio(total.get("novelty_sum", 0.0), routed),
        "decision_latency_histogram": {
            name.removeprefix("decision_"): int(total.get(name, 0)) for name in LATENCY_FIELDS
        },
    }


def tier_requests(row: dict[str, Any]) -> dict[int, int]:
    """A daily row's routed requests per tier served first."""
    return {
        int(name.removeprefix("tier_")): int(value) for name, value in row.items() if name.startswith("tier_")
    }


def routing_report(tenant_id: int, days: int, last: date | None = None) -> dict[str, Any]:
    """The report over `days` days up to `last` (today by default)."""
    routing = TenantRouting.objects.select_related("control", "canary").filter(tenant_id=tenant_id).first()
    client = sync_client("gateway")
    rows = outcomes.daily_figures(client, tenant_id, days, last)
    versions = outcomes.canary_counts(client, tenant_id)
    canary = None
    if routing is not None and routing.canary is not None:
        canary = {
            "version": routing.canary.name,
            "state": routing.canary_state,
            "share": str(routing.canary_share),
            "verdict": routing.canary_verdict,
            "versions": {
                name: {
                    "judged": int(counts["n"]),
                    "failure_rate": ratio(counts["f"], counts["n"]),
                    "mean_cost_usd": usd(counts["cost"] / counts["requests"]) if counts["requests"] else None,
                }
                for name, counts in sorted(versions.items())
            },
        }
    return {
        "object": "routing.report",
        "days": days,
        "quality_target": str(routing.quality_target) if routing else "0.95",
        "control_version": routing.control.name if routing and routing.control else DEFAULT_ROUTER_VERSION,
        "canary": canary,
        "totals": summarise(rows),
        "daily": [{"date": row["date"], **summarise([row])} for row in rows],
        "tier_requests": [tier_requests(row) for row in rows],
    }
