"""The sweeper: no experiment stays active forever.

A worker that dies mid-experiment has its task redelivered by the broker; this
catches what that misses (a lost message, a queue nobody consumed). Every
tenant's active experiments without a heartbeat for settings.EVALS_STALE_SECONDS
are queued again; the runner fails one past settings.EVALS_MAX_ATTEMPTS. One
still held by a live runner is not run twice (the runner's advisory lock), so
queuing it again too early is harmless.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import ProgrammingError
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context

from evals.models import ACTIVE_EXPERIMENT_STATUSES, Experiment
from evals.services import enqueue_experiment
from tenants.models import Tenant

logger = logging.getLogger(__name__)


def sweep_stalled_experiments(now: datetime | None = None) -> int:
    """Queue again the stalled experiments of every tenant; how many. A tenant whose
    schema cannot be read is logged and skipped."""
    moment = now or timezone.now()
    with schema_context(get_public_schema_name()):
        schemas = list(
            Tenant.objects.exclude(schema_name=get_public_schema_name()).values_list("schema_name", flat=True)
        )
    queued = 0
    for schema in schemas:
        try:
            with schema_context(schema):
                queued += sweep_schema(moment)
        except ProgrammingError:
            logger.exception("evals: cannot sweep the schema %s", schema)
    return queued


def stalled(moment: datetime) -> Q:
    cutoff = moment - timedelta(seconds=settings.EVALS_STALE_SECONDS)
    return Q(status__in=ACTIVE_EXPERIMENT_STATUSES) & (
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff)
    )


def sweep_schema(moment: datetime) -> int:
    experiment_ids = list(Experiment.objects.filter(stalled(moment)).values_list("pk", flat=True))
    for experiment_id in experiment_ids:
        # Touched first, so the next sweep waits a whole period for this delivery.
        Experiment.objects.filter(pk=experiment_id).update(heartbeat_at=moment)
        enqueue_experiment(experiment_id)
    return len(experiment_ids)
