"""Billing's background work (queue "billing")."""

from __future__ import annotations

from aiaas.celery import app
from billing import usage

# Beat sends a flush every 2 s; one run stops after this long so runs do not
# pile up behind a backlog (the next one continues where it stopped).
FLUSH_TIME_BUDGET_SECONDS = 30.0


# celery ships no types (pyproject.toml), so its decorators are untyped.
@app.task(name="billing.flush_usage_events", queue="billing", ignore_result=True)  # type: ignore[untyped-decorator]
def flush_usage_events(batch_size: int = 500, stream: str | None = None) -> int:
    """Drain the usage queue into the ledger, batch by batch, until a batch comes
    back short (the queue is empty) or the time budget is spent.

    A plain task, not a tenant task: the ledger spans tenants and lives in the
    public schema (the flush itself switches to it). Redelivery is harmless:
    flushing is idempotent and safe to run in several workers at once.
    """
    return usage.drain(
        lambda size: usage.flush_usage_events(batch_size=size, stream=stream),
        batch_size,
        FLUSH_TIME_BUDGET_SECONDS,
    )
