"""The Celery queues and which worker consumes them, shared by the settings and the
launcher (which must not import Django settings: it starts the services they name).

Platform work (the usage ledger's flush, Stripe meter pushes and webhooks) has
its own queue and its own worker processes, so no amount of tenant work (runs,
ingestion, evals) can delay it.
"""

from __future__ import annotations

from collections.abc import Mapping

BILLING_QUEUE = "billing"
DEFAULT_QUEUE = "default"
DEFAULT_RUNS_QUEUE = "runs"
INGESTION_QUEUE = "ingestion"
EVALS_QUEUE = "evals"
BATCHES_QUEUE = "batches"
# The environment variable naming the agent runs' queue (settings.AGENT_RUNS_QUEUE).
RUNS_QUEUE_VARIABLE = "AGENT_RUNS_QUEUE"

PLATFORM_QUEUES: tuple[str, ...] = (BILLING_QUEUE,)


def runs_queue(environ: Mapping[str, str]) -> str:
    return environ.get(RUNS_QUEUE_VARIABLE) or DEFAULT_RUNS_QUEUE


def tenant_queues(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The queues of tenant workloads, consumed by the tenant worker."""
    return (DEFAULT_QUEUE, runs_queue(environ), INGESTION_QUEUE, EVALS_QUEUE, BATCHES_QUEUE)


def all_queues(environ: Mapping[str, str]) -> tuple[str, ...]:
    return (*tenant_queues(environ), *PLATFORM_QUEUES)


def queue_list(kind: str, environ: Mapping[str, str]) -> str:
    """`tenant` or `platform`: the worker's queues as celery's `--queues` takes them."""
    return ",".join(tenant_queues(environ) if kind == "tenant" else PLATFORM_QUEUES)


if __name__ == "__main__":  # `python -m aiaas.queues tenant` (docker/compose.yaml)
    import os
    import sys

    print(queue_list(sys.argv[1], os.environ))
