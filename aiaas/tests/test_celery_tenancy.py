"""Celery carries the tenant: a task runs in the schema it was sent from."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django_tenants.utils import tenant_context
from pytest_django import DjangoDbBlocker

from accounts.models import User
from aiaas.celery import MissingTenantContextError, app, tenant_task
from tenants.context import current_schema_name
from testing.celery import worker_thread
from testing.tenants import TenantFixture


@tenant_task(name="tests.emails_in_current_schema")
def emails_in_current_schema() -> dict[str, object]:
    return {"schema": current_schema_name(), "emails": sorted(User.objects.values_list("email", flat=True))}


@pytest.fixture(scope="module")
def celery_worker(django_db_setup: object, django_db_blocker: DjangoDbBlocker) -> Iterator[None]:
    """A real worker thread consuming from the real Redis broker, on the queue of
    this run's own that tasks without a queue go to (testing/settings.py), so a
    `make run` worker on the same Redis never takes its tasks, nor it theirs."""
    queue_name = app.conf.task_default_queue
    with (
        worker_thread(queue_name, django_db_blocker),
    ):
        yield


def test_a_task_runs_in_the_schema_it_was_sent_from(
    celery_worker: None, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    with tenant_context(tenant.tenant):
        alpha = emails_in_current_schema.delay()
    with tenant_context(other_tenant.tenant):
        beta = emails_in_current_schema.delay()

    assert alpha.get(timeout=20) == {"schema": tenant.tenant.schema_name, "emails": [tenant.owner_email]}
    assert beta.get(timeout=20) == {
        "schema": other_tenant.tenant.schema_name,
        "emails": [other_tenant.owner_email],
    }


def test_a_tenant_task_sent_without_a_tenant_fails_instead_of_using_public(
    celery_worker: None, db: None
) -> None:
    result = emails_in_current_schema.delay()

    with pytest.raises(MissingTenantContextError):
        result.get(timeout=20)
