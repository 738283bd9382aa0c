"""Platform basics: the database has pgvector, settings refuse unsafe starts, the
OpenAPI document is the committed one, and the admin is for staff on the public host."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client

from accounts.models import User
from testing.tenants import TEST_PASSWORD, TenantFixture

BASE_DIR = Path(settings.BASE_DIR)


def test_the_database_has_pgvector(db: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector")
        (distance,) = cursor.fetchone()

    assert distance == 1.0


def settings_import(**environ: str) -> subprocess.CompletedProcess[str]:
    unset = {"SECRET_KEY", "DEBUG", "AIAAS_PROFILE"}  # the defaults: production's
    env = {key: value for key, value in os.environ.items() if key not in unset}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.ALLOWED_HOSTS, settings.SESSION_COOKIE_SECURE)",
        ],
        cwd=BASE_DIR,
        env={**env, "DJANGO_SETTINGS_MODULE": "aiaas.settings", **environ},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_settings_refuse_to_start_without_secret_key_when_debug_is_off() -> None:
    result = settings_import(DEBUG="false")

    assert result.returncode == 1
    assert "ImproperlyConfigured: SECRET_KEY is required when DEBUG is off." in result.stderr


def test_production_settings_derive_hosts_from_base_domain_and_secure_cookies() -> None:
    result = settings_import(DEBUG="false", SECRET_KEY="x" * 50, BASE_DOMAIN="aiaas.example")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['aiaas.example', '.aiaas.example'] True"


def test_the_committed_openapi_document_is_current(tmp_path: Path) -> None:
    generated = tmp_path / "openapi.yaml"

    call_command(
        "spectacular", "--file", str(generated), "--validate", "--fail-on-warn", "--urlconf", "aiaas.urls_api"
    )

    committed = BASE_DIR / "docs" / "openapi.yaml"
    assert generated.read_text() == committed.read_text(), (
        "docs/openapi.yaml is stale: run `make openapi` and commit it"
    )


@pytest.fixture
def staff_client(db: None) -> Client:
    User.objects.create_superuser("staff@aiaas.example", TEST_PASSWORD)
    client = Client(HTTP_HOST=settings.BASE_DOMAIN)
    client.force_login(User.objects.get(email="staff@aiaas.example"))
    return client


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        "/admin/tenants/tenant/",
        "/admin/tenants/domain/",
        "/admin/tenants/apikey/",
        "/admin/billing/plan/",
        "/admin/accounts/user/",
    ],
)
def test_staff_manage_the_platform_from_the_admin(
    staff_client: Client, tenant: TenantFixture, path: str
) -> None:
    response = staff_client.get(path)

    assert response.status_code == 200


def test_the_admin_never_shows_a_key_secret_or_hash(staff_client: Client, tenant: TenantFixture) -> None:
    api_key = tenant.provisioned.issued_key.api_key

    page = staff_client.get(f"/admin/tenants/apikey/{api_key.pk}/change/").content.decode()

    assert api_key.prefix in page
    assert api_key.secret_hash not in page
    assert tenant.admin_key not in page


def test_the_admin_does_not_exist_on_a_tenant_host(tenant: TenantFixture) -> None:
    response = Client(HTTP_HOST=tenant.host).get("/admin/")

    assert response.status_code == 404


def test_a_tenant_owner_cannot_log_in_to_the_admin(tenant: TenantFixture) -> None:
    client = Client(HTTP_HOST=settings.BASE_DOMAIN)

    response = client.post(
        "/admin/login/?next=/admin/", {"username": tenant.owner_email, "password": TEST_PASSWORD}
    )

    assert response.status_code == 200
    assert client.get("/admin/").status_code == 302
