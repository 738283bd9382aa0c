"""The Celery app. tenant-schemas-celery records the current schema when a
task is sent and switches the worker's connection to it before the task runs."""

import os

from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiaas.settings")

app = CeleryApp("aiaas")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
