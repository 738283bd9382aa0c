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

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiaas.settings")

app = CeleryApp("aiaas")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


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
