"""The Celery app.

tenant-schemas-celery records the connection's schema in each message's
headers when a task is sent, and switches the worker's connection to it before
the task runs. Tasks over a tenant's data use `tenant_task`, which refuses to
run on the public schema instead of silently reading the wrong place.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from tenant_schemas_celery.app import CeleryApp
from tenant_schemas_celery.task import TenantTask

from aiaas.observability import celery as observed_celery  # its signals time every task

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiaas.settings")

app = CeleryApp("aiaas")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


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
