"""The sweeper: no run stays `running` without a live executor.

The broker redelivers a dead worker's task only while no delivery of it has
been acknowledged, and a run may outlast the broker's visibility timeout: the
duplicate delivered then finds the run's lock held by the live executor and is
acknowledged as a no-op. If that executor dies afterwards, nothing is left to
resume the run. So an executor keeps its run's heartbeat (agents/heartbeat.py),
and every tenant's runs `running` whose heartbeat is older than
settings.AGENT_RUN_STALE_SECONDS are resumed here: the sessions still holding
their lock are ended (a frozen or unreachable worker's), and the run is sent to
the runs queue again, where it resumes from its events (agents/engine.py).

A run still `queued` after settings.AGENT_RUN_QUEUED_STALE_SECONDS lost its
delivery, or never had one (the broker was down when its transaction committed,
or the process died between the commit and the send): it is sent again. A run
that was only waiting behind others gets a second delivery, which the first
executor's lock turns into a no-op.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError

from agents import locks
from agents.models import Run, RunStatus
from agents.services import enqueue
from tenants.context import current_schema_name
from tenants.sweeping import heartbeat_stopped, sweep_every_schema

logger = logging.getLogger(__name__)


def sweep_stalled_runs(now: datetime | None = None) -> int:
    """Resume the stalled runs of every tenant; how many."""
    return sweep_every_schema(sweep_schema, now)


def sweep_schema(moment: datetime) -> int:
    stalled = heartbeat_stopped([RunStatus.RUNNING], settings.AGENT_RUN_STALE_SECONDS, moment)
    undelivered = heartbeat_stopped([RunStatus.QUEUED], settings.AGENT_RUN_QUEUED_STALE_SECONDS, moment)
    resumed = 0
    for condition, running in ((stalled, True), (undelivered, False)):
        for run in Run.objects.filter(condition).only("pk", "spec"):
            # Claimed by touching it: a sweeper beside this one, and the next sweep, leave it a whole grace.
            if Run.objects.filter(condition, pk=run.pk).update(heartbeat_at=moment):
                if running:
                    end_lock_holders(run.pk)
                enqueue(run)
                resumed += 1
    return resumed


def end_lock_holders(run_id: int) -> None:
    try:
        ended = locks.end_holders(current_schema_name(), run_id)
    except DatabaseError:  # refused (another role's session): the delivery waits for the next sweep
        logger.exception("run %s: the session holding its lock could not be ended", run_id)
        return
    if ended:
        logger.warning("run %s: its heartbeat stopped; ended %s session(s) holding its lock", run_id, ended)
