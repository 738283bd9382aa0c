from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django_tenants.utils import schema_exists, tenant_context

from accounts.models import Role, User
from tenants.models import ApiKey, ApiKeyScope, Domain, Tenant
from tenants.selectors import find_usable_api_key
from tenants.services import ProvisioningError, provision_tenant

BASE_DIR = Path(settings.BASE_DIR)


def provision_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, str]:
    call_command("provision_tenant", *args, "--json")
    return dict(json.loads(capsys.readouterr().out))


def test_provision_tenant_prints_one_json_object_and_creates_everything(
    db: None, capsys: pytest.CaptureFixture[str]
) -> None:
    data = provision_json(capsys, "--slug", "gamma", "--name", "Gamma", "--owner-email", "ceo@gamma.example")

    assert set(data) == {"tenant", "schema", "domain", "owner_email", "owner_password", "api_key"}
    assert data["tenant"] == "gamma"
    assert data["schema"] == "t_gamma"
    assert data["domain"] == "gamma.localhost"
    assert data["owner_email"] == "ceo@gamma.example"
    tenant = Tenant.objects.get(slug="gamma")
    assert schema_exists("t_gamma")
    assert Domain.objects.get(domain="gamma.localhost").tenant == tenant
    assert tenant.plan is not None
    assert tenant.plan.slug == "free"
    assert tenant.is_email_verified  # staff vouch for the owner's email
    with tenant_context(tenant):
        owner = User.objects.get()
        assert (owner.email, owner.role) == ("ceo@gamma.example", Role.OWNER)
        assert owner.check_password(data["owner_password"])
    api_key = find_usable_api_key(data["api_key"])
    assert api_key is not None
    assert api_key.tenant == tenant
    assert api_key.scopes == [ApiKeyScope.ADMIN]


def test_a_given_password_is_not_printed(db: None, capsys: pytest.CaptureFixture[str]) -> None:
    data = provision_json(
        capsys,
        "--slug",
        "delta",
        "--name",
        "Delta",
        "--owner-email",
        "a@delta.example",
        "--owner-password",
        "a-long-enough-passphrase",
        "--plan",
        "pro",
    )

    assert "owner_password" not in data
    assert Tenant.objects.get(slug="delta").plan.slug == "pro"  # type: ignore[union-attr]


def test_the_clone_has_the_template_tables_and_its_migrations_recorded(db: None) -> None:
    provision_tenant(slug="epsilon", name="Epsilon", owner_email="o@epsilon.example")

    with tenant_context(Tenant.objects.get(slug="epsilon")):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM django_migrations WHERE app = 'accounts'")
            (applied,) = cursor.fetchone()
    assert applied >= 1


@pytest.mark.parametrize(
    ("slug", "message"),
    [
        ("alpha", "slug 'alpha' is taken"),
        ("admin", "slug 'admin' is reserved"),
        ("Bad_Slug", "invalid slug 'bad_slug'"),
        ("ab-", "invalid slug 'ab-'"),
        ("9ab", "invalid slug '9ab'"),
        ("a--b", "invalid slug 'a--b'"),
    ],
)
def test_a_bad_or_taken_slug_is_refused_with_one_line(tenant: object, slug: str, message: str) -> None:
    count = Tenant.objects.count()

    with pytest.raises(CommandError) as error:
        call_command("provision_tenant", "--slug", slug, "--name", "X", "--owner-email", "x@x.example")

    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)
    assert Tenant.objects.count() == count


def test_an_unknown_plan_weak_password_or_overlong_email_creates_nothing(db: None) -> None:
    count = (Tenant.objects.count(), ApiKey.objects.count())

    with pytest.raises(ProvisioningError, match="unknown plan 'gold'"):
        provision_tenant(slug="zeta", name="Zeta", owner_email="o@zeta.example", plan_slug="gold")
    with pytest.raises(ProvisioningError, match="owner password"):
        provision_tenant(slug="zeta", name="Zeta", owner_email="o@zeta.example", owner_password="123")
    with pytest.raises(ProvisioningError, match="invalid owner email"):
        provision_tenant(slug="zeta", name="Zeta", owner_email="o" * 250 + "@zeta.example")

    assert (Tenant.objects.count(), ApiKey.objects.count()) == count
    assert not schema_exists("t_zeta")


def test_the_command_exits_non_zero_with_a_one_line_error_in_a_real_process() -> None:
    # The session's tenants live in the test database; this process uses the
    # development database, where the reserved slug is refused all the same.
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "provision_tenant",
            "--slug",
            "www",
            "--name",
            "W",
            "--owner-email",
            "w@w.example",
            "--json",
        ],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == "CommandError: slug 'www' is reserved"


def test_a_stale_template_is_refused_instead_of_cloned(db: None) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM tenant_template.django_migrations WHERE app = 'accounts'")

    with pytest.raises(ProvisioningError, match="template is behind the code's migrations"):
        provision_tenant(slug="stale", name="Stale", owner_email="o@stale.example")

    assert not Tenant.objects.filter(slug="stale").exists()
    assert not schema_exists("t_stale")
