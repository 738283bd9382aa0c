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


def worker_groups(environ: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """The worker deployments of docker/compose.yaml and deploy/k8s, each scaled on its
    own queues' length: agent runs (long), ingestion (CPU: parsing, embedding), evals
    with batches and the default queue's short housekeeping (model calls, I/O), and
    platform work. Together they consume every queue exactly once."""
    return {
        "agents": (runs_queue(environ),),
        "ingestion": (INGESTION_QUEUE,),
        "evals": (EVALS_QUEUE, BATCHES_QUEUE, DEFAULT_QUEUE),
        "platform": PLATFORM_QUEUES,
    }


def queue_list(kind: str, environ: Mapping[str, str]) -> str:
    """The queues of `tenant` (`make run`'s tenant worker) or of a worker group, as
    celery's `--queues` takes them; an unknown kind is a KeyError."""
    if kind == "tenant":
        return ",".join(tenant_queues(environ))
    return ",".join(worker_groups(environ)[kind])


if __name__ == "__main__":  # `python -m aiaas.queues agents` (docker/compose.yaml, deploy/k8s)
    import os
    import sys

    print(queue_list(sys.argv[1], os.environ))
