"""The Celery app.

tenant-schemas-celery records the connection's schema in each message's
headers when a task is sent, and switches the worker's connection to it before
the task runs. Tasks over a tenant's data use `tenant_task`, which refuses to
run on the public schema instead of silently reading the wrong place.

A task's log lines (aiaas/logs.py) name it, its tenant schema and the request
that sent it (its id travels in a header). With tracing on, each pool process
installs it (aiaas/tracing.py); the trace context travels in the message.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from wsgiref.simple_server import WSGIServer

from celery import Task
from celery.signals import (
    before_task_publish,
    setup_logging,
    task_prerun,
    worker_process_init,
    worker_ready,
    worker_shutdown,
)
from tenant_schemas_celery.app import CeleryApp, get_schema_name_from_task
from tenant_schemas_celery.task import TenantTask

from aiaas import logs, tracing
from aiaas.observability import celery as observed_celery  # its signals time every task
from aiaas.observability import exposition

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiaas.settings")

app = CeleryApp("aiaas")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# The header that carries the id of the request (or task) that sent a task into its lines.
REQUEST_ID_HEADER = "aiaas_request_id"


def keep_django_logging(**kwargs: Any) -> None:
    """Celery configures logging itself unless this signal has a receiver: Django's
    LOGGING (aiaas/logs.py), applied when the worker set Django up, stays the one."""


def send_request_id(headers: dict[str, Any], **kwargs: Any) -> None:
    context = logs.current()
    if context is not None and context.request_id:
        headers[REQUEST_ID_HEADER] = context.request_id


def begin_task_log_context(task_id: str, task: Task, **kwargs: Any) -> None:
    """Each task's lines name it, its tenant schema and the request that sent it
    (else the task's own id)."""
    sender_id = (task.request.headers or {}).get(REQUEST_ID_HEADER) or task.request.get(REQUEST_ID_HEADER)
    context = logs.begin(request_id=sender_id or task_id, route=f"task:{task.name}")
    context.tenant_schema = get_schema_name_from_task(task, kwargs) or ""


def trace_worker_process(**kwargs: Any) -> None:
    """Each pool process installs tracing itself: an exporter's thread does not survive a fork."""
    tracing.install_if_configured()


def serve_worker_metrics(**kwargs: Any) -> None:
    """A worker serves its processes' metrics on METRICS_LISTEN, as web does: where
    each worker has a host of its own (a Kubernetes pod), no web process shares its
    multiprocess folder to serve them."""
    listener = exposition.start_listener()
    if listener is not None:
        metrics_listeners.append(listener)


def stop_worker_metrics(**kwargs: Any) -> None:
    while metrics_listeners:
        listener = metrics_listeners.pop()
        listener.shutdown()
        listener.server_close()


metrics_listeners: list[WSGIServer] = []

setup_logging.connect(keep_django_logging)
worker_process_init.connect(trace_worker_process)
worker_ready.connect(serve_worker_metrics)
worker_shutdown.connect(stop_worker_metrics)
before_task_publish.connect(send_request_id)
task_prerun.connect(begin_task_log_context)


@app.task(name="observability.sample_queues", queue="billing", ignore_result=True)  # type: ignore[untyped-decorator]
def sample_queues() -> None:
    """The Celery queues' and the usage queue's depths in the metrics (beat, every few seconds)."""
    observed_celery.sample_celery_queues(app)
    observed_celery.sample_usage_queue()


class MissingTenantContextError(RuntimeError):
    """A tenant task was sent, or is running, without a tenant schema."""


class TenantScopedTask(TenantTask):
    abstract = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from django.db import connection
        from django_tenants.utils import get_public_schema_name

        if getattr(connection, "schema_name", None) in (None, get_public_schema_name()):
            raise MissingTenantContextError(f"{self.name} must run in a tenant's schema, not public")
        return super().__call__(*args, **kwargs)


def tenant_task(*args: Any, **options: Any) -> Callable[..., Any]:
    """`@tenant_task(queue=...)`: a task that always runs in the sender's tenant schema."""
    return app.task(*args, base=TenantScopedTask, **options)  # type: ignore[no-any-return]
