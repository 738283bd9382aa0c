"""Request logs' background work (queue "default").

Plain tasks, not tenant tasks: each spans every tenant and enters each
tenant's schema itself with `schema_context` (request_logs/services.py).
"""

from __future__ import annotations

from aiaas.celery import app
from aiaas.stream_queue import drain
from request_logs import services

# Beat sends a flush every 5 s; one run stops after this long so runs do not
# pile up behind a backlog (the next one continues where it stopped).
FLUSH_TIME_BUDGET_SECONDS = 30.0


# celery ships no types (pyproject.toml), so its decorators are untyped.
@app.task(name="request_logs.flush", queue="default", ignore_result=True)  # type: ignore[untyped-decorator]
def flush(batch_size: int = 200, stream: str | None = None) -> int:
    """Drain the request log queue into the tenants' schemas, batch by batch, until a
    batch comes back short or the time budget is spent. Redelivery is harmless:
    flushing is idempotent and safe to run in several workers at once."""
    return drain(
        lambda size: services.flush_request_logs(batch_size=size, stream=stream),
        batch_size,
        FLUSH_TIME_BUDGET_SECONDS,
    )


@app.task(name="request_logs.purge", queue="default", ignore_result=True)  # type: ignore[untyped-decorator]
def purge() -> int:
    """Delete every tenant's request logs older than its retention. Idempotent."""
    return services.purge_expired_request_logs()
