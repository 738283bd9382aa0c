"""Datasets over /api/v1/datasets: versions made by copy-on-write, cases, import and
export, and cases made from request logs and agent runs."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django_tenants.utils import tenant_context
from rest_framework.test import APIClient

from agents.models import RunStatus
from agents.tests.factories import make_run
from evals.models import Case, DatasetVersion
from evals.tests.factories import lock_latest, make_dataset
from request_logs.tests.factories import make_request_log
from testing.tenants import TenantFixture


def cases_of(tenant: TenantFixture, dataset_id: int, version: int) -> list[tuple[str, Any]]:
    with tenant_context(tenant.tenant):
        return list(
            Case.objects.filter(version__dataset_id=dataset_id, version__version=version)
            .order_by("position")
            .values_list("key", "expected")
        )


def error_of(response: Any) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def test_it_creates_a_dataset_with_an_empty_first_version(api_client: APIClient) -> None:
    response = api_client.post(
        "/api/v1/datasets", {"name": "support", "description": "Support questions."}, format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["object"], body["name"], body["latest_version"], body["case_count"], body["locked"]) == (
        "dataset",
        "support",
        1,
        0,
        False,
    )


def test_it_refuses_a_taken_name_and_a_golden_prefix(api_client: APIClient) -> None:
    api_client.post("/api/v1/datasets", {"name": "support"}, format="json")

    taken = api_client.post("/api/v1/datasets", {"name": "support"}, format="json")
    reserved = api_client.post("/api/v1/datasets", {"name": "golden-mine"}, format="json")

    assert (taken.status_code, error_of(taken)["code"]) == (409, "name_taken")
    assert (reserved.status_code, error_of(reserved)["code"]) == (400, "reserved_name")


def test_it_refuses_unknown_fields_and_bad_inputs(tenant: TenantFixture, api_client: APIClient) -> None:
    dataset = make_dataset(tenant)

    unknown = api_client.post("/api/v1/datasets", {"name": "x", "colour": "red"}, format="json")
    bad_input = api_client.post(
        f"/api/v1/datasets/{dataset.pk}/cases", {"input": {"text": "hi"}}, format="json"
    )
    bad_key = api_client.post(
        f"/api/v1/datasets/{dataset.pk}/cases", {"key": "a b", "input": "hi"}, format="json"
    )

    assert (unknown.status_code, error_of(unknown)["param"]) == (400, "colour")
    assert (bad_input.status_code, error_of(bad_input)["param"]) == (400, "input")
    assert (bad_key.status_code, error_of(bad_key)["param"]) == (400, "key")


def test_adding_a_case_to_an_unlocked_version_keeps_the_version(
    tenant: TenantFixture, api_client: APIClient
) -> None:
    dataset = make_dataset(tenant, cases=2)

    response = api_client.post(
        f"/api/v1/datasets/{dataset.pk}/cases",
        {"key": "refunds", "input": "How do refunds work?"},
        format="json",
    )

    assert response.status_code == 201, response.content
    assert response.json()["version"] == 1
    assert response.json()["position"] == 3
    assert response.json()["input"] == {"messages": [{"role": "user", "content": "How do refunds work?"}]}
    assert [key for key, _ in cases_of(tenant, dataset.pk, 1)] == ["case-1", "case-2", "refunds"]


def test_editing_a_locked_version_makes_the_next_version_and_leaves_it_unchanged(
    tenant: TenantFixture, api_client: APIClient
) -> None:
    dataset = make_dataset(tenant, cases=2)
    lock_latest(tenant, dataset)

    response = api_client.patch(
        f"/api/v1/datasets/{dataset.pk}/cases/case-1", {"expected": "Changed."}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["version"] == 2
    assert cases_of(tenant, dataset.pk, 1) == [("case-1", "Answer 1."), ("case-2", "Answer 2.")]
    assert cases_of(tenant, dataset.pk, 2) == [("case-1", "Changed."), ("case-2", "Answer 2.")]
    # Version 2 is not locked: the next edit stays in it.
    api_client.delete(f"/api/v1/datasets/{dataset.pk}/cases/case-2")
    assert cases_of(tenant, dataset.pk, 2) == [("case-1", "Changed.")]
    with tenant_context(tenant.tenant):
        assert DatasetVersion.objects.filter(dataset=dataset).count() == 2


def test_deleting_from_a_locked_version_answers_the_new_version(
    tenant: TenantFixture, api_client: APIClient
) -> None:
    dataset = make_dataset(tenant, cases=2)
    lock_latest(tenant, dataset)

    response = api_client.delete(f"/api/v1/datasets/{dataset.pk}/cases/case-2")

    assert response.status_code == 200, response.content
    assert (response.json()["version"], response.json()["case_count"], response.json()["locked_at"]) == (
        2,
        1,
        None,
    )
    assert len(cases_of(tenant, dataset.pk, 1)) == 2


def test_a_new_version_copies_the_cases_with_new_assertions(
    tenant: TenantFixture, api_client: APIClient
) -> None:
    dataset = make_dataset(tenant, cases=3)
    assertions = [{"type": "contains", "value": "Answer"}]

    response = api_client.post(
        f"/api/v1/datasets/{dataset.pk}/versions", {"assertions": assertions}, format="json"
    )
    listed = api_client.get(f"/api/v1/datasets/{dataset.pk}/versions")

    assert response.status_code == 201, response.content
    assert (response.json()["version"], response.json()["case_count"]) == (2, 3)
    assert response.json()["assertions"] == assertions
    assert [v["version"] for v in listed.json()["data"]] == [2, 1]


def test_cases_are_listed_by_position_and_paged(tenant: TenantFixture, api_client: APIClient) -> None:
    dataset = make_dataset(tenant, cases=3)

    first = api_client.get(f"/api/v1/datasets/{dataset.pk}/cases?limit=2")
    rest = api_client.get(f"/api/v1/datasets/{dataset.pk}/cases?limit=2&after=2")
    missing = api_client.get(f"/api/v1/datasets/{dataset.pk}/cases?version=9")

    assert [case["key"] for case in first.json()["data"]] == ["case-1", "case-2"]
    assert first.json()["has_more"] is True
    assert [case["key"] for case in rest.json()["data"]] == ["case-3"]
    assert rest.json()["has_more"] is False
    assert missing.status_code == 404


def test_an_added_key_the_version_has_is_a_conflict(tenant: TenantFixture, api_client: APIClient) -> None:
    dataset = make_dataset(tenant, cases=1)

    response = api_client.post(
        f"/api/v1/datasets/{dataset.pk}/cases", {"key": "case-1", "input": "again"}, format="json"
    )

    assert (response.status_code, error_of(response)["code"]) == (409, "key_taken")


JSONL = (
    '{"key": "a", "input": "Where is my order?", "expected": {"status": "shipped"}, "tags": ["orders"]}\n'
    "\n"
    '{"key": "b", "input": {"messages": [{"role": "user", "content": "Hi"}]}, '
    '"assertions": [{"type": "contains", "value": "hello"}]}\n'
)


def test_it_imports_jsonl_and_exports_it_back(tenant: TenantFixture, api_client: APIClient) -> None:
    dataset = make_dataset(tenant, cases=0)

    imported = api_client.post(f"/api/v1/datasets/{dataset.pk}/import", {"content": JSONL}, format="json")
    exported = api_client.get(f"/api/v1/datasets/{dataset.pk}/export?file_format=jsonl")

    assert imported.status_code == 200, imported.content
    assert imported.json()["case_count"] == 2
    assert exported["Content-Type"] == "application/jsonl"
    lines = [json.loads(line) for line in exported.content.decode().splitlines()]
    assert lines == [
        {
            "key": "a",
            "input": {"messages": [{"role": "user", "content": "Where is my order?"}]},
            "expected": {"status": "shipped"},
            "tags": ["orders"],
            "assertions": [],
        },
        {
            "key": "b",
            "input": {"messages": [{"role": "user", "content": "Hi"}]},
            "expected": None,
            "tags": [],
            "assertions": [{"type": "contains", "value": "hello"}],
        },
    ]


def test_the_export_takes_format_as_the_dashboards_links_name_it(
    tenant: TenantFixture, api_client: APIClient
) -> None:
    dataset = make_dataset(tenant, cases=2)
    export = f"/api/v1/datasets/{dataset.pk}/export"

    named = api_client.get(f"{export}?format=csv")
    both = api_client.get(f"{export}?format=csv&file_format=csv")
    crossed = api_client.get(f"{export}?format=csv&file_format=jsonl")
    unknown = api_client.get(f"{export}?format=xml")

    assert (named.status_code, named["Content-Type"]) == (200, "text/csv")
    assert named.content == api_client.get(f"{export}?file_format=csv").content
    assert both.content == named.content
    assert api_client.get(export)["Content-Type"] == "application/jsonl"
    assert (crossed.status_code, crossed.json()["error"]["param"]) == (400, "format")
    assert (unknown.status_code, unknown.json()["error"]["param"]) == (400, "format")


def test_a_csv_export_imports_back_to_the_same_cases(tenant: TenantFixture, api_client: APIClient) -> None:
    source = make_dataset(tenant, cases=3)
    target = make_dataset(tenant, cases=0)
    exported = api_client.get(f"/api/v1/datasets/{source.pk}/export?file_format=csv")
    upload = SimpleUploadedFile("cases.csv", exported.content, content_type="text/csv")

    response = api_client.post(f"/api/v1/datasets/{target.pk}/import", {"file": upload}, format="multipart")

    assert response.status_code == 200, response.content
    again = api_client.get(f"/api/v1/datasets/{target.pk}/export?file_format=csv")
    assert again.content == exported.content
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert rows[0] == {
        "key": "case-1",
        "input": '{"messages": [{"role": "user", "content": "Question 1?"}]}',
        "expected": '"Answer 1."',
        "tags": "smoke",
        "assertions": '[{"type": "contains", "value": "Answer 1"}]',
    }


def test_a_csv_with_text_cells_imports(tenant: TenantFixture, api_client: APIClient) -> None:
    dataset = make_dataset(tenant, cases=0)
    content = "key,input,expected,tags\nq1,What are your hours?,We open at 8.,faq;hours\nq2,Hi,,\n"

    response = api_client.post(
        f"/api/v1/datasets/{dataset.pk}/import", {"content": content, "file_format": "csv"}, format="json"
    )

    assert response.status_code == 200, response.content
    case = api_client.get(f"/api/v1/datasets/{dataset.pk}/cases/q1").json()
    assert (case["input"], case["expected"], case["tags"]) == (
        {"messages": [{"role": "user", "content": "What are your hours?"}]},
        "We open at 8.",
        ["faq", "hours"],
    )


def test_a_bad_line_is_refused_with_its_number_and_nothing_is_imported(
    tenant: TenantFixture, api_client: APIClient
) -> None:
    dataset = make_dataset(tenant, cases=1)
    bad_json = '{"input": "ok"}\n{"input": "ok too"}\n{"input": \n'
    bad_field = '{"input": "ok"}\n{"input": "x", "colour": "red"}\n'
    bad_csv = "key,input\nq1,Hi\nq2,Hello,extra\n"
    duplicate = '{"key": "k", "input": "a"}\n{"key": "k", "input": "b"}\n'

    answers = [
        api_client.post(f"/api/v1/datasets/{dataset.pk}/import", body, format="json")
        for body in (
            {"content": bad_json},
            {"content": bad_field},
            {"content": bad_csv, "file_format": "csv"},
            {"content": duplicate},
        )
    ]

    assert [(a.status_code, error_of(a)["code"]) for a in answers] == [(400, "invalid_line")] * 4
    assert [error_of(a)["message"].split(":")[1] for a in answers] == [
        " line 3",
        " line 2",
        " line 3",
        " line 2",
    ]
    assert len(cases_of(tenant, dataset.pk, 1)) == 1


def test_an_import_over_the_size_bound_is_refused(tenant: TenantFixture, api_client: APIClient) -> None:
    dataset = make_dataset(tenant, cases=0)

    with override_settings(EVALS_IMPORT_MAX_BYTES=100):
        response = api_client.post(
            f"/api/v1/datasets/{dataset.pk}/import", {"content": JSONL * 3}, format="json"
        )

    assert (response.status_code, error_of(response)["code"]) == (400, "file_too_large")


def test_replace_mode_makes_the_version_hold_exactly_the_file(
    tenant: TenantFixture, api_client: APIClient
) -> None:
    dataset = make_dataset(tenant, cases=3)
    lock_latest(tenant, dataset)

    response = api_client.post(
        f"/api/v1/datasets/{dataset.pk}/import", {"content": JSONL, "mode": "replace"}, format="json"
    )

    assert (response.json()["version"], response.json()["case_count"]) == (2, 2)
    assert len(cases_of(tenant, dataset.pk, 1)) == 3


def test_cases_come_from_logged_requests(tenant: TenantFixture, api_client: APIClient) -> None:
    dataset = make_dataset(tenant, cases=0)
    log = make_request_log(tenant, response_text="Hello there!")
    failed = make_request_log(tenant, status=500)
    cut = make_request_log(tenant, request_body={"truncated": True, "original_bytes": 10, "head": "{"})

    response = api_client.post(
        f"/api/v1/datasets/{dataset.pk}/from-request-logs", {"request_ids": [log.request_id]}, format="json"
    )
    refused = [
        api_client.post(
            f"/api/v1/datasets/{dataset.pk}/from-request-logs", {"request_ids": [request_id]}, format="json"
        )
        for request_id in (failed.request_id, cut.request_id, "req_never_logged")
    ]

    assert response.status_code == 200, response.content
    case = api_client.get(f"/api/v1/datasets/{dataset.pk}/cases/{log.request_id}").json()
    assert (case["input"], case["expected"], case["source"]) == (
        {"messages": [{"role": "user", "content": "Hi"}]},
        "Hello there!",
        f"request:{log.request_id}",
    )
    assert [(r.status_code, error_of(r)["param"]) for r in refused] == [(400, "request_ids")] * 3


def test_cases_come_from_succeeded_agent_runs(tenant: TenantFixture, api_client: APIClient) -> None:
    dataset = make_dataset(tenant, cases=0)
    run = make_run(tenant, run_input={"text": "Where is NW-1?"})
    queued = make_run(tenant)
    with tenant_context(tenant.tenant):
        run.status, run.output = RunStatus.SUCCEEDED, {"answer": "Shipped."}
        run.save(update_fields=["status", "output"])

    response = api_client.post(
        f"/api/v1/datasets/{dataset.pk}/from-runs", {"run_ids": [run.pk]}, format="json"
    )
    refused = api_client.post(
        f"/api/v1/datasets/{dataset.pk}/from-runs", {"run_ids": [queued.pk]}, format="json"
    )

    assert response.status_code == 200, response.content
    case = api_client.get(f"/api/v1/datasets/{dataset.pk}/cases/run-{run.pk}").json()
    assert (case["input"], case["expected"]) == (
        {"agent_input": {"text": "Where is NW-1?"}},
        {"answer": "Shipped."},
    )
    assert refused.status_code == 400


def test_deleting_a_dataset_removes_it(tenant: TenantFixture, api_client: APIClient) -> None:
    dataset = make_dataset(tenant, cases=2)

    response = api_client.delete(f"/api/v1/datasets/{dataset.pk}")

    assert response.status_code == 204
    assert api_client.get(f"/api/v1/datasets/{dataset.pk}").status_code == 404


def test_nightly_settings_are_kept(tenant: TenantFixture, api_client: APIClient) -> None:
    dataset = make_dataset(tenant)

    response = api_client.patch(
        f"/api/v1/datasets/{dataset.pk}",
        {"nightly_model": "sim-small", "alert_webhook_url": "https://hooks.example.com/evals"},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert (response.json()["nightly_model"], response.json()["alert_webhook_url"]) == (
        "sim-small",
        "https://hooks.example.com/evals",
    )


def test_a_case_with_a_bad_scorer_spec_is_refused(tenant: TenantFixture, api_client: APIClient) -> None:
    dataset = make_dataset(tenant, cases=0)

    response = api_client.post(
        f"/api/v1/datasets/{dataset.pk}/cases",
        {"input": "hi", "assertions": [{"type": "contains", "value": "x", "colour": "red"}]},
        format="json",
    )
    in_file = api_client.post(
        f"/api/v1/datasets/{dataset.pk}/import",
        {"content": '{"input": "hi", "assertions": [{"type": "telepathy"}]}\n'},
        format="json",
    )

    assert (response.status_code, error_of(response)["code"], error_of(response)["param"]) == (
        400,
        "invalid_scorer",
        "assertions",
    )
    assert (in_file.status_code, error_of(in_file)["code"]) == (400, "invalid_line")
    assert "line 1: assertions: scorer 0: unknown type" in error_of(in_file)["message"]


def test_nul_characters_are_refused_not_a_server_error(tenant: TenantFixture, api_client: APIClient) -> None:
    dataset = make_dataset(tenant, cases=1)

    added = api_client.post(f"/api/v1/datasets/{dataset.pk}/cases", {"input": "a\u0000b"}, format="json")
    changed = api_client.patch(
        f"/api/v1/datasets/{dataset.pk}/cases/case-1", {"expected": {"x": "\u0000"}}, format="json"
    )
    imported = api_client.post(
        f"/api/v1/datasets/{dataset.pk}/import",
        {"content": '{"input": "ok", "expected": "\\u0000"}\n'},
        format="json",
    )

    assert (added.status_code, error_of(added)["param"]) == (400, "input")
    assert (changed.status_code, error_of(changed)["param"]) == (400, "expected")
    assert (imported.status_code, error_of(imported)["code"]) == (400, "invalid_line")


def test_a_refused_nightly_setting_creates_nothing(api_client: APIClient) -> None:
    response = api_client.post(
        "/api/v1/datasets", {"name": "support", "alert_webhook_url": "http://10.0.0.1/hook"}, format="json"
    )

    assert (response.status_code, error_of(response)["param"]) == (400, "alert_webhook_url")
    assert api_client.get("/api/v1/datasets").json()["data"] == []
