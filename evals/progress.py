"""An experiment's progress on its realtime stream (`/ws/v1/streams/<stream_id>`).

`experiment.progress` events from its creation (status `queued`, so the
stream the API names can be opened at once) and as results are stored (cases
done, passed, errored, of how many), then one final `experiment.succeeded`, `.failed` or
`.cancelled` with the aggregates. Progress is advisory: the experiment's rows
are the truth, so a failed publish is logged and never fails the experiment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from evals.models import Experiment, ExperimentStatus
from ingestion.runtime import runtime
from realtime import streams
from tenants.context import current_schema_name

logger = logging.getLogger(__name__)

FINAL_STATUSES = frozenset({ExperimentStatus.SUCCEEDED, ExperimentStatus.FAILED, ExperimentStatus.CANCELLED})


@dataclass
class Counts:
    total: int
    done: int = 0
    passed: int = 0
    errors: int = 0


def progress_event(experiment: Experiment, counts: Counts) -> dict[str, Any]:
    return {
        "type": "experiment.progress",
        "experiment_id": experiment.pk,
        "status": experiment.status,
        "done": counts.done,
        "total": counts.total,
        "passed": counts.passed,
        "errors": counts.errors,
    }


def final_event(experiment: Experiment) -> dict[str, Any]:
    return {
        "type": f"experiment.{experiment.status}",
        "experiment_id": experiment.pk,
        "status": experiment.status,
        "error": experiment.error[:1000],
        "aggregates": experiment.aggregates,
    }


def publish(experiment: Experiment, counts: Counts | None = None) -> None:
    """Send the experiment's progress (with `counts`), or its end once it is over."""
    if not experiment.stream_id:
        return
    final = experiment.status in FINAL_STATUSES
    event = final_event(experiment) if final or counts is None else progress_event(experiment, counts)
    try:
        # On the thread's own loop and clients, as the cases' calls (ingestion/progress.py).
        runtime().run(streams.apublish(current_schema_name(), experiment.stream_id, event, final=final))
    except streams.StreamClosedError:
        pass  # a redelivered task after the final event: nothing more to say
    except (RedisError, ValueError):
        logger.warning("evals: progress of %s not published", experiment.pk, exc_info=True)


def publish_queued(experiment: Experiment, schema_name: str, total: int) -> None:
    """The stream's first event, for a just created experiment (sent once its creation
    commits): a socket on a stream with no event yet is refused (404), and a paused
    experiment may wait long."""
    event = progress_event(experiment, Counts(total=total))
    try:
        streams.publish(schema_name, experiment.stream_id, event)
    except (RedisError, ValueError):
        logger.warning("evals: the queued event of %s not published", experiment.pk, exc_info=True)
