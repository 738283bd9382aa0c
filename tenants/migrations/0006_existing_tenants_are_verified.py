"""Tenants that existed before email verification keep working: they count as verified."""

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.models import F


def mark_existing_tenants_verified(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    Tenant = apps.get_model("tenants", "Tenant")
    Tenant.objects.filter(email_verified_at__isnull=True).update(email_verified_at=F("created_at"))


class Migration(migrations.Migration):
    dependencies = [("tenants", "0005_tenant_email_verified_at")]

    operations = [migrations.RunPython(mark_existing_tenants_verified, migrations.RunPython.noop)]
