"""A run's heartbeat: proof that an executor is alive while it holds the run.

While an executor holds a run, a thread of its own stamps the run's
`heartbeat_at` every AGENT_RUN_HEARTBEAT_SECONDS, however long a step takes (a
model call, a slow tool), until the executor lets go. The sweeper
(agents/sweeper.py) resumes a `running` run whose heartbeat stopped. A beat is
one UPDATE of one row, on a connection opened for it and closed after, so an
executor holds no second connection between beats.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone
from django_tenants.utils import schema_context

from agents.models import Run, RunStatus
from tenants.context import current_schema_name

logger = logging.getLogger(__name__)


@contextmanager
def beating(run_id: int) -> Iterator[None]:
    """Stamp the run's heartbeat (in the current tenant schema) until the block ends."""
    stop = threading.Event()
    thread = threading.Thread(
        target=beat, args=(current_schema_name(), run_id, stop), name=f"run-{run_id}-heartbeat", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def beat(schema_name: str, run_id: int, stop: threading.Event) -> None:
    while not stop.wait(settings.AGENT_RUN_HEARTBEAT_SECONDS):
        try:
            with schema_context(schema_name):
                Run.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(heartbeat_at=timezone.now())
        except DatabaseError:  # the next beat tries again; the grace spans several
            logger.warning("run %s: a heartbeat was not recorded", run_id, exc_info=True)
        finally:
            connection.close()
