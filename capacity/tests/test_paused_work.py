"""A level that pauses ingestion or evals keeps new documents and experiments
`queued` without sending them, and they are sent when a level that does not pause
them returns."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Any
from urllib.parse import urlsplit

from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from capacity.levels import Level
from evals.models import Case, Dataset, DatasetVersion, Experiment, ExperimentStatus
from evals.services import create_experiment
from evals.sweeper import resume_schema as resume_experiments
from ingestion import services
from ingestion.models import Document, DocumentStatus
from ingestion.sweeper import resume_schema
from ingestion.tests.factories import key_id, make_collection
from realtime.tests.clients import first_stream_event
from testing.capacity import held_at
from testing.database import committed
from testing.tenants import TenantFixture

MESSAGES = {"messages": [{"role": "user", "content": "hi"}]}
EXPERIMENT: dict[str, Any] = {
    "target_kind": "model",
    "target": {"model": "sim-small"},
    "scorers": [],
    "concurrency": 1,
}


def test_new_documents_wait_queued_while_ingestion_is_paused_and_are_sent_on_resume(
    tenant: TenantFixture, registry: str, django_capture_on_commit_callbacks: Any
) -> None:
    with tenant_context(tenant.tenant):
        collection = make_collection(tenant)
        with (
            held_at(Level.DEGRADED, pause_work=["ingestion"]),
            django_capture_on_commit_callbacks() as paused,
        ):
            document, created = services.add_text(collection, text="Paused.", api_key_id=key_id(tenant))
        with django_capture_on_commit_callbacks() as sent:
            services.add_text(collection, text="Not paused.", api_key_id=key_id(tenant))
        with django_capture_on_commit_callbacks() as resumed:
            resumed_count = resume_schema(timezone.now())
        queued = Document.objects.filter(status=DocumentStatus.QUEUED).count()

    assert created
    assert document.status == DocumentStatus.QUEUED
    # Each document's queued event is published on commit; its task is sent only when not paused.
    assert (len(paused), len(sent)) == (1, 2)
    assert resumed_count == queued == len(resumed)
    assert queued >= 2


def test_new_experiments_wait_queued_while_evals_are_paused_and_are_sent_on_resume(
    tenant: TenantFixture, registry: str, django_capture_on_commit_callbacks: Any
) -> None:
    with tenant_context(tenant.tenant):
        dataset = Dataset.objects.create(name=f"paused-{uuid.uuid4().hex[:8]}")
        version = DatasetVersion.objects.create(dataset=dataset, version=1)
        Case.objects.create(version=version, key="one", position=0, input=MESSAGES)
        with held_at(Level.CRITICAL, pause_work=["evals"]), django_capture_on_commit_callbacks() as paused:
            experiment = create_experiment(
                version, **EXPERIMENT, api_key=tenant.provisioned.issued_key.api_key
            )
        with django_capture_on_commit_callbacks() as resumed:
            resumed_count = resume_experiments(timezone.now())
        queued = Experiment.objects.filter(status=ExperimentStatus.QUEUED).count()

    assert experiment.status == ExperimentStatus.QUEUED
    # Only the stream's queued event waits on the commit: no run is sent while paused.
    assert [callback.__qualname__ for callback in paused] == ["create_experiment.<locals>.<lambda>"]
    assert resumed_count == queued == len(resumed) >= 1


FIRST_READ = """
import django
django.setup()
from capacity.levels import PausedWork
from capacity.state import is_paused
print(is_paused(PausedWork.EVALS), is_paused(PausedWork.INGESTION), flush=True)
"""


def test_a_fresh_process_pauses_its_first_work_at_a_pausing_level(db: None) -> None:
    """A web process or worker just started read `normal` until its first load
    finished, so its first experiment or document was sent at a critical level."""
    database = urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{connection.settings_dict['NAME']}")
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "testing.settings",
        "DATABASE_URL": database.geturl(),
    }

    with held_at(Level.CRITICAL, reason="fresh process"):
        first = subprocess.run(  # noqa: S603 (our own interpreter and script)
            [sys.executable, "-c", FIRST_READ], capture_output=True, text=True, env=environment, timeout=60
        )

    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["True", "True"]


def test_a_paused_documents_stream_opens_at_once_and_says_queued(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    """The document's stream_id is in the API's answer, but its first event came only
    when a worker took it: while ingestion was paused a client's socket got 404."""

    def added() -> Document:
        with tenant_context(serving_tenant.tenant):
            collection = make_collection(serving_tenant)
            document, _ = services.add_text(
                collection, text=f"Paused {uuid.uuid4().hex}.", api_key_id=key_id(serving_tenant)
            )
            return document

    with held_at(Level.DEGRADED, pause_work=["ingestion"]):
        document = committed(added)

    event = first_stream_event(gateway, document.stream_id, serving_tenant.admin_key)

    assert (event["type"], event["document_id"], event["status"]) == (
        "ingestion.progress",
        document.pk,
        "queued",
    )
