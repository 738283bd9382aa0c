"""Analytics' background work, on the platform queue ("billing") beside the ledger flush."""

from __future__ import annotations

from aiaas.celery import app
from aiaas.observability.metrics import ANALYTICS_ROLLUP_LAG
from analytics import rollups

# Beat sends a run every 2 s; one run stops after this long so runs do not pile up.
ROLLUP_TIME_BUDGET_SECONDS = 25.0


# celery ships no types (pyproject.toml), so its decorators are untyped.
@app.task(name="analytics.apply_rollups", queue="billing", ignore_result=True)  # type: ignore[untyped-decorator]
def apply_rollups() -> int:
    """Fold new ledger rows into the read model (analytics/rollups.py). A plain task: the
    ledger and the rollups span tenants in the public schema. Runs that overlap return
    at once (one worker holds the lock); a redelivered run applies nothing twice."""
    applied = rollups.apply_rollups(time_budget_seconds=ROLLUP_TIME_BUDGET_SECONDS)
    ANALYTICS_ROLLUP_LAG.set(rollups.progress().lag_seconds)
    return applied
