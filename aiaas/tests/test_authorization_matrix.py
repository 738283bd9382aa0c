"""Every API operation x every kind of caller. Add a row for each new operation."""

from __future__ import annotations

import pytest
from django_tenants.utils import tenant_context

from agents.models import Run, RunStatus
from agents.tests.factories import make_agent, make_prompt, make_run, simple_spec
from batches.tests.factories import make_batch
from evals.models import Dataset, Experiment, ExperimentStatus
from evals.tests.factories import make_dataset, make_experiment
from ingestion.tests.factories import (
    ATTACHED_FILE_ID,
    make_collection_and_unattached_file,
    make_collection_with_file,
    make_document,
    make_stored_collection,
    make_stored_file,
    upload,
)
from registry import services
from registry.models import Entry
from registry.tests.factories import create_prompt
from request_logs.tests.factories import make_request_log
from tenants.models import ApiKey, ApiKeyScope
from tenants.services import create_api_key
from testing.isolation import (
    Operation,
    api_operations,
    assert_closed_to_outsider,
    assert_refuses_unusable_keys,
    assert_serves_owner,
)
from testing.tenants import TenantFixture

# Creating a collection checks its embedding model in the registry (the simulated provider's).
pytestmark = pytest.mark.usefixtures("registry")


def make_dataset_with_logged_request(tenant: TenantFixture) -> Dataset:
    make_request_log(tenant, request_id="req_matrix")
    return make_dataset(tenant)


def make_queued_experiment(tenant: TenantFixture) -> Experiment:
    return make_experiment(tenant, status=ExperimentStatus.QUEUED)


def make_superseded_prompt(tenant: TenantFixture) -> Entry:
    """A prompt whose second version superseded its first in production (one to roll back)."""
    first = make_prompt(tenant)
    with tenant_context(tenant.tenant):
        for entry in (first, create_prompt(first.name, "Again: {{ input.text }}")):
            services.promote(services.promote(entry, actor="test"), actor="test")
    return first


def make_finished_run(tenant: TenantFixture) -> Run:
    """A run that succeeded (only a finished run may be replayed)."""
    run = make_run(tenant)
    with tenant_context(tenant.tenant):
        Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    return run


def make_api_key(tenant: TenantFixture) -> ApiKey:
    return create_api_key(tenant.tenant, name="matrix", scopes=[ApiKeyScope.INFERENCE]).api_key


OPERATIONS = [
    Operation("usage-list", "get", 200),
    Operation("analytics-summary", "get", 200),
    Operation("analytics-timeseries", "get", 200),
    Operation("billing-preview", "get", 200),
    Operation("request-log-list", "get", 200),
    Operation("request-log-detail", "get", 200, make_object=make_request_log),
    Operation("api-key-list", "get", 200),
    Operation("api-key-list", "post", 201, body={"name": "ci"}),
    Operation("api-key-detail", "get", 200, make_object=make_api_key),
    Operation("api-key-detail", "delete", 204, make_object=make_api_key),
    Operation("api-key-detail", "patch", 200, body={"name": "renamed"}, make_object=make_api_key),
    Operation("tenant-settings", "get", 200),
    Operation("tenant-settings", "patch", 200, body={"cors_allowed_origins": ["https://app.example.com"]}),
    Operation("routing-report", "get", 200),
    Operation("flag-list", "get", 200),
    Operation("routing-settings", "get", 200),
    Operation("routing-settings", "patch", 200, body={"quality_target": "0.90"}),
    # Agents and runs (agents/api).
    Operation("agent-list", "get", 200),
    Operation("agent-list", "post", 201, body={"spec": simple_spec("matrix-created")}),
    Operation("agent-detail", "get", 200, make_object=make_agent),
    Operation(
        "agent-detail", "put", 200, body={"spec": simple_spec("matrix-renamed")}, make_object=make_agent
    ),
    Operation("agent-detail", "delete", 204, make_object=make_agent),
    Operation("agent-runs", "post", 201, body={"input": {"text": "hi"}}, make_object=make_agent),
    Operation("run-list", "get", 200),
    Operation("run-detail", "get", 200, make_object=make_run),
    Operation("run-events", "get", 200, make_object=make_run),
    Operation("run-cancel", "post", 200, make_object=make_run),
    Operation("run-replay", "post", 201, make_object=make_finished_run),
    Operation("prompt-list", "get", 200),
    Operation("prompt-list", "post", 201, body={"name": "greeting", "template": "Hi {{ input.name }}"}),
    Operation("prompt-detail", "get", 200, make_object=make_prompt),
    Operation(
        "prompt-render", "post", 200, body={"variables": {"input": {"text": "hi"}}}, make_object=make_prompt
    ),
    Operation("prompt-promote", "post", 200, make_object=make_prompt),
    Operation("prompt-rollback", "post", 200, make_object=make_superseded_prompt),
    Operation("collection-list", "get", 200),
    Operation("collection-list", "post", 201, body={"name": "matrix", "embedding_model": "sim-small"}),
    Operation("collection-detail", "get", 200, make_object=make_stored_collection),
    Operation(
        "collection-detail", "patch", 200, body={"name": "renamed"}, make_object=make_stored_collection
    ),
    Operation("collection-detail", "delete", 204, make_object=make_stored_collection),
    Operation("collection-documents", "get", 200, make_object=make_stored_collection),
    Operation(
        "collection-documents", "post", 201, body={"text": "matrix"}, make_object=make_stored_collection
    ),
    Operation("document-list", "get", 200),
    Operation("document-detail", "get", 200, make_object=make_document),
    Operation("document-detail", "delete", 204, make_object=make_document),
    Operation("document-reingest", "post", 200, make_object=make_document),
    Operation(
        "collection-search",
        "post",
        200,
        body={"query": "anything", "mode": "keyword"},
        make_object=make_stored_collection,
    ),
    # Eval datasets (evals/api).
    Operation("dataset-list", "get", 200),
    Operation("dataset-list", "post", 201, body={"name": "matrix"}),
    Operation("dataset-golden", "get", 200),
    Operation("dataset-detail", "get", 200, make_object=make_dataset),
    Operation("dataset-detail", "patch", 200, body={"description": "renamed"}, make_object=make_dataset),
    Operation("dataset-detail", "delete", 204, make_object=make_dataset),
    Operation("dataset-versions", "get", 200, make_object=make_dataset),
    Operation("dataset-versions", "post", 201, body={}, make_object=make_dataset),
    Operation("dataset-cases", "get", 200, make_object=make_dataset),
    Operation("dataset-cases", "post", 201, body={"input": "matrix"}, make_object=make_dataset),
    *(
        Operation(
            "dataset-case-detail",
            method,
            200,
            body=body,
            make_object=make_dataset,
            extra_kwargs={"key": "case-1"},
        )
        for method, body in [("get", None), ("patch", {"expected": "changed"}), ("delete", None)]
    ),
    Operation(
        "dataset-import", "post", 200, body={"content": '{"input": "matrix"}'}, make_object=make_dataset
    ),
    Operation("dataset-export", "get", 200, make_object=make_dataset),
    Operation(
        "dataset-from-request-logs",
        "post",
        200,
        body={"request_ids": ["req_matrix"]},
        make_object=make_dataset_with_logged_request,
    ),
    # An unknown run is the owner's 400; turning runs into cases is evals/tests/test_datasets.py's.
    Operation("dataset-from-runs", "post", 400, body={"run_ids": [987654321]}, make_object=make_dataset),
    # Experiments (evals/api). An unknown dataset or baseline is the owner's 400; creating and
    # comparing for real is evals/tests/test_experiments_api.py's.
    Operation("experiment-list", "get", 200),
    Operation(
        "experiment-list",
        "post",
        400,
        body={"dataset": 987654321, "target_kind": "model", "target": {"model": "sim-small"}},
    ),
    Operation("experiment-detail", "get", 200, make_object=make_experiment),
    Operation("experiment-cancel", "post", 200, make_object=make_queued_experiment),
    Operation("experiment-results", "get", 200, make_object=make_experiment),
    Operation(
        "experiment-result-detail",
        "patch",
        200,
        body={"human_label": False},
        make_object=make_experiment,
        extra_kwargs={"key": "case-1"},
    ),
    Operation(
        "experiment-compare",
        "get",
        400,
        body={"baseline": "exp_" + "0" * 24},
        make_object=make_experiment,
    ),
    Operation("experiment-gate", "post", 200, body={"min_pass_rate": 0.5}, make_object=make_experiment),
    Operation("experiment-agreement", "get", 200, make_object=make_experiment),
    # OpenAI's files and vector stores (ingestion/openai).
    Operation("v1-file-list", "get", 200),
    Operation(
        "v1-file-list",
        "post",
        200,
        body=lambda: {"purpose": "assistants", "file": upload()},
        format="multipart",
    ),
    Operation("v1-file-detail", "get", 200, make_object=make_stored_file, url_kwarg="file_id"),
    Operation("v1-file-detail", "delete", 200, make_object=make_stored_file, url_kwarg="file_id"),
    Operation("v1-file-content", "get", 200, make_object=make_stored_file, url_kwarg="file_id"),
    Operation("v1-vector-store-list", "get", 200),
    Operation("v1-vector-store-list", "post", 200, body={"name": "matrix"}),
    Operation(
        "v1-vector-store-detail", "get", 200, make_object=make_stored_collection, url_kwarg="vector_store_id"
    ),
    Operation(
        "v1-vector-store-detail",
        "post",
        200,
        body={"name": "renamed"},
        make_object=make_stored_collection,
        url_kwarg="vector_store_id",
    ),
    Operation(
        "v1-vector-store-detail",
        "delete",
        200,
        make_object=make_stored_collection,
        url_kwarg="vector_store_id",
    ),
    Operation(
        "v1-vector-store-search",
        "post",
        200,
        body={"query": "tenancy"},
        make_object=make_stored_collection,
        url_kwarg="vector_store_id",
    ),
    Operation(
        "v1-vector-store-file-list",
        "get",
        200,
        make_object=make_collection_with_file,
        url_kwarg="vector_store_id",
    ),
    Operation(
        "v1-vector-store-file-list",
        "post",
        200,
        body={"file_id": ATTACHED_FILE_ID},
        make_object=make_collection_and_unattached_file,
        url_kwarg="vector_store_id",
    ),
    *(
        Operation(
            url_name,
            method,
            200,
            make_object=make_collection_with_file,
            url_kwarg="vector_store_id",
            extra_kwargs={"file_id": ATTACHED_FILE_ID},
        )
        for url_name, method in [
            ("v1-vector-store-file-detail", "get"),
            ("v1-vector-store-file-detail", "delete"),
            ("v1-vector-store-file-content", "get"),
        ]
    ),
    # OpenAI's batches (batches/openai). Creating one from a file and running it is
    # batches/tests/test_openai_batches.py's; here an unknown input file is the owner's 404.
    Operation("v1-batch-list", "get", 200),
    Operation(
        "v1-batch-list",
        "post",
        404,
        body={"input_file_id": "file-none", "endpoint": "/v1/chat/completions", "completion_window": "24h"},
    ),
    Operation("v1-batch-detail", "get", 200, make_object=make_batch, url_kwarg="batch_id"),
    Operation("v1-batch-cancel", "post", 200, make_object=make_batch, url_kwarg="batch_id"),
]
OBJECT_OPERATIONS = [operation for operation in OPERATIONS if operation.make_object]


def test_every_api_operation_has_a_row() -> None:
    declared = {(operation.url_name, operation.method) for operation in OPERATIONS}
    assert set(api_operations()) == declared


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.id)
def test_it_refuses_missing_revoked_expired_and_malformed_keys(
    operation: Operation, tenant: TenantFixture
) -> None:
    assert_refuses_unusable_keys(operation, tenant)


@pytest.mark.parametrize("operation", OBJECT_OPERATIONS, ids=lambda operation: operation.id)
def test_another_tenants_key_gets_404_and_changes_nothing(
    operation: Operation, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    assert_closed_to_outsider(operation, tenant, other_tenant)


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.id)
def test_the_owners_key_is_served(operation: Operation, tenant: TenantFixture) -> None:
    assert_serves_owner(operation, tenant)
