"""Moving what the usage stream holds into the ledger, in tests."""

from __future__ import annotations

from billing.usage import flush_usage_events

BATCH = 1000


def drain_usage_events(stream: str | None = None) -> int:
    """Flush until the stream is drained; how many entries were handled. One flush takes
    one batch, and other tests (Schemathesis' thousands of requests) may have filled the
    stream before this test's entries."""
    handled = total = flush_usage_events(batch_size=BATCH, stream=stream)
    while handled == BATCH:
        handled = flush_usage_events(batch_size=BATCH, stream=stream)
        total += handled
    return total
