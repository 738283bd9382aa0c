"""Staff see the platform's entries and their audit trail in the admin, and cannot edit them there."""

from __future__ import annotations

from django.conf import settings
from django.test import Client

from accounts.models import User
from registry.tests.factories import create_tool, tool_manifest
from testing.tenants import TEST_PASSWORD


def test_staff_see_an_entry_and_its_history_read_only(db: None) -> None:
    entry = create_tool(tool_manifest("lookup"))
    User.objects.create_superuser("staff@aiaas.example", TEST_PASSWORD)
    client = Client(HTTP_HOST=settings.BASE_DOMAIN)
    client.force_login(User.objects.get(email="staff@aiaas.example"))

    listed = client.get("/admin/registry/entry/")
    shown = client.get(f"/admin/registry/entry/{entry.pk}/change/")
    posted = client.post(f"/admin/registry/entry/{entry.pk}/change/", {"state": "production"})

    assert listed.status_code == 200
    assert "lookup" in listed.content.decode()
    assert shown.status_code == 200
    assert "created" in shown.content.decode()
    assert posted.status_code == 403
    entry.refresh_from_db()
    assert entry.state == "draft"
