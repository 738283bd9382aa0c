"""Every change of a flag or its overrides, from the services or the admin, writes one
audit entry: who, when, the flag's state before and after. The entries are read-only."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import Client

from accounts.models import User
from billing.models import Plan
from flags.models import Flag, FlagChange
from flags.services import delete_flag, save_flag, set_plan_override, set_tenant_override
from tenants.models import Tenant
from testing.tenants import TEST_PASSWORD, TenantFixture

STAFF = "staff@aiaas.example"


@pytest.fixture
def staff_client(db: None) -> Client:
    User.objects.create_superuser(STAFF, TEST_PASSWORD)
    client = Client(HTTP_HOST=settings.BASE_DOMAIN)
    client.force_login(User.objects.get(email=STAFF))
    return client


def state(
    enabled: bool, *, plans: dict[str, bool] | None = None, tenants: dict[str, bool] | None = None
) -> dict[str, object]:
    return {
        "description": "",
        "enabled_by_default": enabled,
        "rollout_percentage": None,
        "plans": plans or {},
        "tenants": tenants or {},
    }


def changes_of(key: str) -> list[tuple[str, object, object]]:
    return [
        (c.actor, c.old_value, c.new_value) for c in FlagChange.objects.filter(flag_key=key).order_by("id")
    ]


def test_each_change_records_who_and_the_state_before_and_after(tenant: TenantFixture) -> None:
    pro = Plan.objects.get(slug="pro")

    save_flag("beta-search", enabled_by_default=False, actor="alice@aiaas.example")
    set_plan_override("beta-search", pro, True, actor="bob@aiaas.example")
    set_tenant_override("beta-search", tenant.tenant, False, actor="carol@aiaas.example")
    delete_flag("beta-search", actor="dave@aiaas.example")

    assert changes_of("beta-search") == [
        ("alice@aiaas.example", None, state(False)),
        ("bob@aiaas.example", state(False), state(False, plans={"pro": True})),
        (
            "carol@aiaas.example",
            state(False, plans={"pro": True}),
            state(False, plans={"pro": True}, tenants={"alpha": False}),
        ),
        ("dave@aiaas.example", state(False, plans={"pro": True}, tenants={"alpha": False}), None),
    ]
    assert all(change.changed_at is not None for change in FlagChange.objects.filter(flag_key="beta-search"))


def test_a_save_that_changes_nothing_records_nothing(db: None) -> None:
    save_flag("beta-search", enabled_by_default=True, actor="alice@aiaas.example")
    save_flag("beta-search", enabled_by_default=True, actor="alice@aiaas.example")

    assert len(changes_of("beta-search")) == 1


def test_a_rollout_over_100_is_refused(db: None) -> None:
    with pytest.raises(ValidationError, match="100"):
        save_flag(
            "beta-search", enabled_by_default=False, rollout_percentage=101, actor="alice@aiaas.example"
        )

    assert not Flag.objects.filter(key="beta-search").exists()
    assert changes_of("beta-search") == []


def inline_forms(prefix: str, rows: list[dict[str, str]], initial: int = 0) -> dict[str, str]:
    data = {f"{prefix}-TOTAL_FORMS": str(len(rows)), f"{prefix}-INITIAL_FORMS": str(initial)}
    for index, row in enumerate(rows):
        data.update({f"{prefix}-{index}-{name}": value for name, value in row.items()})
    return data


def test_the_admin_audits_a_flag_and_its_inline_overrides(
    staff_client: Client, tenant: TenantFixture
) -> None:
    flag = Flag.objects.get(key="agents")
    form = {
        "description": flag.description,
        "enabled_by_default": "on",
        "rollout_percentage": "",
        **inline_forms("plan_overrides", [{"plan": str(Plan.objects.get(slug="free").pk), "enabled": ""}]),
        **inline_forms("tenant_overrides", [{"tenant": str(tenant.tenant.pk), "enabled": "on"}]),
    }

    response = staff_client.post(f"/admin/flags/flag/{flag.pk}/change/", form)

    assert response.status_code == 302, (
        [str(e) for e in response.context["errors"]] if response.context else ""
    )
    change = FlagChange.objects.filter(flag_key="agents").latest("id")
    assert change.actor == STAFF
    assert change.old_value == {**state(True), "description": flag.description}
    assert change.new_value == {
        **state(True, plans={"free": False}, tenants={"alpha": True}),
        "description": flag.description,
    }


def test_the_admin_audits_a_deletion(staff_client: Client) -> None:
    flag = Flag.objects.get(key="batches")

    response = staff_client.post(f"/admin/flags/flag/{flag.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    change = FlagChange.objects.filter(flag_key="batches").latest("id")
    assert (change.actor, change.new_value) == (STAFF, None)
    assert change.old_value is not None
    assert change.old_value["enabled_by_default"] is True


def test_audit_entries_are_read_only_in_the_admin(staff_client: Client) -> None:
    change = FlagChange.objects.filter(flag_key="agents").latest("id")

    page = staff_client.get(f"/admin/flags/flagchange/{change.pk}/change/")
    edit = staff_client.post(f"/admin/flags/flagchange/{change.pk}/change/", {"actor": "mallory"})
    delete = staff_client.post(f"/admin/flags/flagchange/{change.pk}/delete/", {"post": "yes"})
    add = staff_client.get("/admin/flags/flagchange/add/")

    assert page.status_code == 200
    assert 'name="actor"' not in page.content.decode()
    assert (edit.status_code, delete.status_code, add.status_code) == (403, 403, 403)
    change.refresh_from_db()
    assert change.actor == "migration flags.0002"


def test_deleting_a_plan_or_a_tenant_audits_the_overrides_it_drops(tenant: TenantFixture) -> None:
    plan = Plan.objects.create(slug="short-lived", name="Short-lived")
    save_flag("beta-search", enabled_by_default=False, actor="alice@aiaas.example")
    set_plan_override("beta-search", plan, True, actor="bob@aiaas.example")
    set_tenant_override("beta-search", tenant.tenant, True, actor="bob@aiaas.example")
    save_flag("untouched", enabled_by_default=True, actor="alice@aiaas.example")

    plan.delete()
    tenant_slug = tenant.tenant.slug
    Tenant.objects.filter(pk=tenant.tenant.pk).delete()

    both = state(False, plans={"short-lived": True}, tenants={tenant_slug: True})
    assert changes_of("beta-search")[-2:] == [
        ("deletion of the plan short-lived", both, state(False, tenants={tenant_slug: True})),
        (f"deletion of the tenant {tenant_slug}", state(False, tenants={tenant_slug: True}), state(False)),
    ]
    assert len(changes_of("untouched")) == 1
