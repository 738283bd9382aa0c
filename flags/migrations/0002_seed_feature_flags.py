"""The flags that gate the platform's features, on for everyone (staff turn them off)."""

from __future__ import annotations

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

FLAGS = {
    "playground": "The dashboard's chat playground.",
    "agents": "Agents and their runs: the dashboard pages and /api/v1 agents, runs and prompts.",
    "ingestion": "Knowledge: the dashboard pages, /api/v1 collections and documents, /v1 files and vector stores.",
    "evals": "Evals: the dashboard pages and /api/v1 datasets and experiments.",
    "batches": "/v1/batches.",
}
ACTOR = "migration flags.0002"


def seed(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    Flag = apps.get_model("flags", "Flag")
    FlagChange = apps.get_model("flags", "FlagChange")
    for key, description in FLAGS.items():
        _, created = Flag.objects.get_or_create(
            key=key, defaults={"description": description, "enabled_by_default": True}
        )
        if created:
            state = {
                "description": description,
                "enabled_by_default": True,
                "rollout_percentage": None,
                "plans": {},
                "tenants": {},
            }
            FlagChange.objects.create(flag_key=key, actor=ACTOR, old_value=None, new_value=state)


def unseed(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    apps.get_model("flags", "Flag").objects.filter(key__in=FLAGS).delete()
    apps.get_model("flags", "FlagChange").objects.filter(actor=ACTOR).delete()


class Migration(migrations.Migration):
    dependencies = [("flags", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
