"""The router's background work (Celery beat, queue "default")."""

from __future__ import annotations

from aiaas.celery import app
from routing.router import canary, services


# celery ships no types (pyproject.toml), so its decorators are untyped.
@app.task(name="routing.check_canaries", ignore_result=True)  # type: ignore[untyped-decorator]
def check_canaries() -> dict[str, int]:
    """The sequential test of every running canary (routing/router/canary.py)."""
    return canary.check_canaries()


@app.task(name="routing.snapshot_outcomes", ignore_result=True)  # type: ignore[untyped-decorator]
def snapshot_outcomes() -> int:
    """Tenants' learned router outcomes, copied from Redis to PostgreSQL."""
    return services.snapshot_outcomes()
