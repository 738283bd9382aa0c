"""The dashboard's evals pages on the tenant's host: experiments with their pass-rate
chart, an experiment's figures and per-case results with human labels, starting
one, comparing two (regressions first), datasets with import, export and cases
from traffic; bad input is a 400 page that says why; another tenant's owner
finds nothing (404) and changes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts.models import Role
from accounts.tests.factories import browser_for, make_user
from agents.tests.factories import make_run
from evals.models import CaseResult, Dataset, DatasetVersion, Experiment, ExperimentStatus
from evals.tests.web_factories import make_experiment, make_version
from evals.web import comparison as comparison_page
from request_logs.models import RequestLog
from tenants.models import ApiKey
from testing.tenants import TenantFixture

EVALS = "/dashboard/evals/"


def key_id(tenant: TenantFixture) -> str:
    return str(tenant.provisioned.issued_key.api_key.pk)


def html_of(response: Any) -> str:
    return str(response.content.decode())


def label_of(tenant: TenantFixture, result: CaseResult) -> bool | None:
    with tenant_context(tenant.tenant):
        return CaseResult.objects.get(pk=result.pk).human_label


# Experiments


def test_the_experiments_page_lists_experiments_and_charts_each_datasets_pass_rate(
    tenant: TenantFixture,
) -> None:
    version = make_version(tenant, cases=3, name="orders")
    make_experiment(tenant, version, [True, True, False], model="sim-small")
    make_experiment(tenant, version, [], model="sim-large", status=ExperimentStatus.RUNNING)

    response = tenant.web_client().get(EVALS)

    html = html_of(response)
    assert response.status_code == 200
    assert html.count('href="/dashboard/evals/experiments/exp_') == 2
    assert 'id="pass-rate-trend"' in html
    assert '<th scope="col">orders</th>' in html
    assert "<td>67%</td>" in html
    assert 'aria-current="page">Evals</a>' in html


def test_an_experiment_shows_its_figures_outputs_scores_and_the_judges_reasoning(
    tenant: TenantFixture,
) -> None:
    version = make_version(tenant, cases=2)
    experiment = make_experiment(tenant, version, [True, False])

    response = tenant.web_client().get(f"{EVALS}experiments/{experiment.pk}/")

    html = html_of(response)
    assert response.status_code == 200
    assert "50%" in html
    assert "95% CI 40\u201355%" in html
    assert "Answer to case-1" in html
    assert "Where is order 2?" in html
    assert "It never says when the order ships." in html
    assert html.count('name="label" value="pass"') == 2
    assert 'data-live="0"' in html


def test_the_cases_table_shows_all_the_failed_or_the_unlabelled_results(tenant: TenantFixture) -> None:
    experiment = make_experiment(tenant, make_version(tenant, cases=3), [True, False, False])
    with tenant_context(tenant.tenant):
        CaseResult.objects.filter(experiment=experiment, case__key="case-2").update(human_label=False)
    browser = tenant.web_client()
    page = f"{EVALS}experiments/{experiment.pk}/"

    shown = {
        view: [
            key
            for key in ("case-1", "case-2", "case-3")
            if f"<code>{key}</code>" in html_of(browser.get(page, {"show": view}))
        ]
        for view in ("all", "failed", "unlabelled", "nonsense")
    }

    assert shown == {
        "all": ["case-1", "case-2", "case-3"],
        "failed": ["case-2", "case-3"],
        "unlabelled": ["case-1", "case-3"],
        "nonsense": ["case-1", "case-2", "case-3"],
    }


def test_a_running_experiment_serves_its_progress_and_a_token_for_its_stream(tenant: TenantFixture) -> None:
    version = make_version(tenant, cases=3)
    experiment = make_experiment(tenant, version, [True], status=ExperimentStatus.RUNNING)
    browser = tenant.web_client()

    page = html_of(browser.get(f"{EVALS}experiments/{experiment.pk}/"))
    progress = browser.get(f"{EVALS}experiments/{experiment.pk}/progress/").json()
    token = browser.post(f"{EVALS}experiments/{experiment.pk}/stream-token/").json()

    assert 'data-live="1"' in page
    assert "evals-experiment.js" in page
    assert progress == {
        "id": experiment.pk,
        "status": "running",
        "done": 1,
        "total": 3,
        "passed": 1,
        "errors": 0,
        "live": True,
    }
    assert (token["purpose"], token["stream_id"]) == ("streams", experiment.stream_id)


def test_a_label_click_stores_the_human_label(tenant: TenantFixture) -> None:
    experiment = make_experiment(tenant, make_version(tenant, cases=1), [True])
    with tenant_context(tenant.tenant):
        result = CaseResult.objects.get(experiment=experiment)
    browser = tenant.web_client()
    url = f"{EVALS}results/{result.pk}/label/"

    stored = []
    for label in ("fail", "pass", "clear"):
        response = browser.post(url, {"label": label, "page": "1", "show": "failed"})
        assert (
            response["Location"]
            == f"{EVALS}experiments/{experiment.pk}/?show=failed&page=1#result-{result.pk}"
        )
        stored.append(label_of(tenant, result))

    assert stored == [False, True, None]


def test_labels_measure_the_judges_agreement_on_the_page(tenant: TenantFixture) -> None:
    experiment = make_experiment(tenant, make_version(tenant, cases=4), [True, True, False, False])
    with tenant_context(tenant.tenant):
        results = list(CaseResult.objects.filter(experiment=experiment).order_by("case__position"))
    browser = tenant.web_client()
    page = f"{EVALS}experiments/{experiment.pk}/"
    unlabelled = html_of(browser.get(page))

    for result, label in zip(results, ["pass", "pass", "fail", "pass"], strict=True):
        browser.post(f"{EVALS}results/{result.pk}/label/", {"label": label})
    labelled = html_of(browser.get(page))

    assert "Label outputs pass or fail below" in unlabelled
    assert "Judge agreement (<code>llm_judge</code>)" in labelled
    assert "\u03ba 0.50" in labelled
    assert "people's labels on 4 cases: moderate; they agree on 75%" in labelled


def test_a_bad_label_is_a_400_page_with_the_message(tenant: TenantFixture) -> None:
    experiment = make_experiment(tenant, make_version(tenant, cases=1), [True])
    with tenant_context(tenant.tenant):
        result = CaseResult.objects.get(experiment=experiment)

    response = tenant.web_client().post(f"{EVALS}results/{result.pk}/label/", {"label": "maybe"})

    assert response.status_code == 400
    assert "Select a valid choice" in html_of(response)
    assert label_of(tenant, result) is None


def test_a_member_may_read_and_follow_but_not_label(tenant: TenantFixture) -> None:
    experiment = make_experiment(tenant, make_version(tenant, cases=1), [True])
    with tenant_context(tenant.tenant):
        result = CaseResult.objects.get(experiment=experiment)
    member = browser_for(tenant, make_user(tenant, role=Role.MEMBER))

    page = member.get(f"{EVALS}experiments/{experiment.pk}/")
    token = member.post(f"{EVALS}experiments/{experiment.pk}/stream-token/")
    label = member.post(f"{EVALS}results/{result.pk}/label/", {"label": "pass"})

    assert (page.status_code, token.status_code, label.status_code) == (200, 200, 403)
    assert 'name="label"' not in html_of(page)
    assert 'name="csrfmiddlewaretoken"' in html_of(page)
    assert label_of(tenant, result) is None


def start_form(tenant: TenantFixture, dataset_version: DatasetVersion, **changes: str) -> dict[str, str]:
    return {
        "name": "small model",
        "version": str(dataset_version.pk),
        "target_kind": "model",
        "target": json.dumps({"model": "sim-small"}),
        "scorers": json.dumps([{"type": "contains", "value": "ships"}]),
        "concurrency": "2",
        "api_key": key_id(tenant),
        **changes,
    }


def test_the_start_form_preselects_the_only_key(tenant: TenantFixture) -> None:
    # Other tests' servers may have committed keys to this tenant: this one keeps one.
    only = tenant.provisioned.issued_key.api_key
    ApiKey.objects.filter(tenant=tenant.tenant).exclude(pk=only.pk).update(revoked_at=timezone.now())

    html = html_of(tenant.web_client().get(f"{EVALS}new/"))

    assert f'<option value="{key_id(tenant)}" selected>' in html


def test_an_experiment_is_started_from_the_form(tenant: TenantFixture, registry: str) -> None:
    version = make_version(tenant, cases=2)

    response = tenant.web_client().post(f"{EVALS}new/", start_form(tenant, version))

    with tenant_context(tenant.tenant):
        experiment = Experiment.objects.get(name="small model")
        version.refresh_from_db()
    assert response["Location"] == f"{EVALS}experiments/{experiment.pk}/"
    assert (experiment.status, experiment.target["model"], experiment.concurrency) == (
        "queued",
        "sim-small",
        2,
    )
    assert experiment.scorers == [{"type": "contains", "value": "ships"}]
    assert experiment.api_key_id == int(key_id(tenant))
    assert version.locked_at is not None


def test_a_pairwise_judge_is_started_against_the_chosen_baseline(
    tenant: TenantFixture, registry: str
) -> None:
    version = make_version(tenant, cases=2)
    baseline = make_experiment(tenant, version, [True, False])
    pairwise = json.dumps([{"type": "pairwise_judge", "model": "sim-large"}])

    without = tenant.web_client().post(f"{EVALS}new/", start_form(tenant, version, scorers=pairwise))
    started = tenant.web_client().post(
        f"{EVALS}new/", start_form(tenant, version, scorers=pairwise, baseline=baseline.pk)
    )

    assert without.status_code == 400
    assert "A `pairwise_judge` needs a baseline experiment." in html_of(without)
    with tenant_context(tenant.tenant):
        experiment = Experiment.objects.get(name="small model")
    assert started["Location"] == f"{EVALS}experiments/{experiment.pk}/"
    assert experiment.baseline_id == baseline.pk
    page = html_of(tenant.web_client().get(started["Location"]))
    assert f"?baseline={baseline.pk}&amp;candidate={experiment.pk}" in page


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"target": "{not json"}, "Not valid JSON"),
        ({"target": json.dumps({"model": "no-such-model"})}, "no-such-model"),
        ({"scorers": json.dumps([{"type": "no-such-scorer"}])}, "no-such-scorer"),
        ({"scorers": json.dumps({"type": "contains"})}, "The scorers are a JSON list."),
        ({"concurrency": "0"}, "greater than or equal to 1"),
        ({"version": "999999"}, "Select a valid choice"),
    ],
    ids=["json", "model", "scorer", "scorers-object", "concurrency", "version"],
)
def test_the_start_form_refuses_bad_input_with_a_400_page(
    tenant: TenantFixture, registry: str, changes: dict[str, str], message: str
) -> None:
    version = make_version(tenant, cases=1)

    response = tenant.web_client().post(f"{EVALS}new/", start_form(tenant, version, **changes))

    assert response.status_code == 400
    assert message in html_of(response)
    with tenant_context(tenant.tenant):
        assert not Experiment.objects.exists()


def test_a_running_experiment_is_cancelled_from_its_page(tenant: TenantFixture) -> None:
    experiment = make_experiment(
        tenant, make_version(tenant, cases=2), [True], status=ExperimentStatus.RUNNING
    )

    response = tenant.web_client().post(f"{EVALS}experiments/{experiment.pk}/cancel/")

    with tenant_context(tenant.tenant):
        experiment.refresh_from_db()
    assert response["Location"] == f"{EVALS}experiments/{experiment.pk}/"
    assert experiment.status == ExperimentStatus.CANCELLED
    assert experiment.aggregates is not None
    assert experiment.aggregates["n"] == 1


# Comparison


def test_the_comparison_shows_both_experiments_side_by_side_with_regressions_first(
    tenant: TenantFixture,
) -> None:
    version = make_version(tenant, cases=3)
    baseline = make_experiment(tenant, version, [True, True, False], model="sim-large")
    candidate = make_experiment(tenant, version, [False, True, True], model="sim-small")

    response = tenant.web_client().get(
        f"{EVALS}compare/", {"baseline": baseline.pk, "candidate": candidate.pk}
    )

    html = html_of(response)
    assert response.status_code == 200
    changes = [
        line.split('data-change="')[1].split('"')[0] for line in html.splitlines() if "data-change=" in line
    ]
    assert changes == ["regressed", "improved", "unchanged"]
    assert (
        html.index("<code>case-1</code>")
        < html.index("<code>case-3</code>")
        < html.index("<code>case-2</code>")
    )
    assert 'id="change-counts">1 / 1 / 1<' in html
    assert "McNemar p = 1.000" in html


@pytest.mark.parametrize("which", ["unknown", "other-dataset"])
def test_comparing_what_cannot_be_compared_is_a_400_page(tenant: TenantFixture, which: str) -> None:
    baseline = make_experiment(tenant, make_version(tenant, cases=1), [True])
    other = (
        "exp_nothing"
        if which == "unknown"
        else make_experiment(tenant, make_version(tenant, cases=1), [True]).pk
    )

    response = tenant.web_client().get(f"{EVALS}compare/", {"baseline": baseline.pk, "candidate": other})

    assert response.status_code == 400
    expected = "No experiment exp_nothing." if which == "unknown" else "not of the same dataset"
    assert expected in html_of(response)


def test_the_comparison_form_alone_renders_with_the_experiment_a_link_names(tenant: TenantFixture) -> None:
    experiment = make_experiment(tenant, make_version(tenant, cases=1), [True])
    browser = tenant.web_client()

    link = f"{EVALS}compare/?candidate={experiment.pk}"
    response = browser.get(link)

    assert response.status_code == 200
    assert html_of(response).count('<select name="') == 2
    assert html_of(response).count(f'<option value="{experiment.pk}" selected>') == 1
    assert link in html_of(browser.get(f"{EVALS}experiments/{experiment.pk}/"))


# Datasets


def test_a_dataset_is_created_and_listed(tenant: TenantFixture) -> None:
    browser = tenant.web_client()

    response = browser.post(f"{EVALS}datasets/new/", {"name": "faq-checks", "description": "FAQ"})

    with tenant_context(tenant.tenant):
        dataset = Dataset.objects.get(name="faq-checks")
    assert response["Location"] == f"{EVALS}datasets/{dataset.pk}/"
    assert "faq-checks" in html_of(browser.get(f"{EVALS}datasets/"))


@pytest.mark.parametrize(("name", "message"), [("orders", "exists"), ("not a slug", "Enter a valid")])
def test_a_bad_dataset_name_is_a_400_page(tenant: TenantFixture, name: str, message: str) -> None:
    make_version(tenant, name="orders")

    response = tenant.web_client().post(f"{EVALS}datasets/new/", {"name": name})

    assert response.status_code == 400
    assert message in html_of(response)


def test_a_dataset_page_shows_its_versions_and_its_cases_page_by_page(tenant: TenantFixture) -> None:
    version = make_version(tenant, cases=60)
    experiment = make_experiment(tenant, version, [True])
    browser = tenant.web_client()
    page = f"{EVALS}datasets/{version.dataset_id}/"

    first = html_of(browser.get(page))
    second = html_of(browser.get(page, {"version": "1", "page": "2"}))

    assert first.count("<code>case-") == 50
    assert f'href="{EVALS}experiments/{experiment.pk}/"' in first
    assert second.count("<code>case-") == 10
    assert "<code>case-51</code>" in second
    assert "Page 2 of 2 (60)" in second
    assert 'href="?version=1&amp;page=2"' in first
    assert browser.get(page, {"version": "7"}).status_code == 404
    # Not a version number (str.isdigit takes '²'; the column holds 32 bits): the latest.
    for odd in ("\u00b2", "9" * 30, "-1"):
        assert browser.get(page, {"version": odd}).status_code == 200, odd


def test_cases_are_imported_from_a_file_and_exported_back(tenant: TenantFixture) -> None:
    version = make_version(tenant, cases=0)
    browser = tenant.web_client()
    lines = [
        {"key": "refund", "input": {"messages": [{"role": "user", "content": "Refund?"}]}, "expected": "Yes"},
        {"key": "hours", "input": {"messages": [{"role": "user", "content": "Hours?"}]}, "tags": ["faq"]},
    ]
    upload = SimpleUploadedFile("cases.jsonl", "".join(json.dumps(line) + "\n" for line in lines).encode())

    imported = browser.post(
        f"{EVALS}datasets/{version.dataset_id}/import/", {"file": upload, "format": "jsonl", "mode": "append"}
    )
    exported = browser.get(
        f"{EVALS}datasets/{version.dataset_id}/export/", {"version": "1", "format": "jsonl"}
    )

    assert imported["Location"] == f"{EVALS}datasets/{version.dataset_id}/?version=1"
    assert exported["Content-Disposition"] == f'attachment; filename="{version.dataset.name}-v1.jsonl"'
    rows = [json.loads(line) for line in exported.content.decode().splitlines()]
    assert [(row["key"], row["expected"], row["tags"]) for row in rows] == [
        ("refund", "Yes", []),
        ("hours", None, ["faq"]),
    ]
    assert "Refund?" in html_of(browser.get(f"{EVALS}datasets/{version.dataset_id}/"))


def test_a_bad_import_is_a_400_page_naming_the_line(tenant: TenantFixture) -> None:
    version = make_version(tenant, cases=0)
    upload = SimpleUploadedFile("cases.jsonl", b'{"key": "a", "input": {"messages": []}}\n{not json\n')

    response = tenant.web_client().post(
        f"{EVALS}datasets/{version.dataset_id}/import/", {"file": upload, "format": "jsonl", "mode": "append"}
    )

    assert response.status_code == 400
    assert "line" in html_of(response)
    with tenant_context(tenant.tenant):
        assert not version.cases.exists()


def test_an_export_in_an_unknown_format_is_a_400(tenant: TenantFixture) -> None:
    version = make_version(tenant, cases=1)

    response = tenant.web_client().get(f"{EVALS}datasets/{version.dataset_id}/export/", {"format": "xml"})

    assert response.status_code == 400


def test_picked_requests_and_runs_become_cases_of_a_new_dataset(tenant: TenantFixture) -> None:
    with tenant_context(tenant.tenant):
        RequestLog.objects.create(
            request_id="req_traffic1",
            model="sim-small",
            request_body={"model": "auto", "messages": [{"role": "user", "content": "Track parcel 42"}]},
            response_text="Parcel 42 arrives Tuesday.",
            status=200,
            created_at=timezone.now(),
        )
    run = make_run(tenant)
    with tenant_context(tenant.tenant):
        run.status, run.output = "succeeded", {"label": "ok"}
        run.save(update_fields=["status", "output"])
    browser = tenant.web_client()

    page = browser.get(f"{EVALS}datasets/from-traffic/")
    response = browser.post(
        f"{EVALS}datasets/from-traffic/",
        {"dataset": "from-traffic", "request_ids": ["req_traffic1"], "run_ids": [str(run.pk)]},
    )

    assert "Track parcel 42" in html_of(page)
    with tenant_context(tenant.tenant):
        dataset = Dataset.objects.get(name="from-traffic")
        cases = list(dataset.versions.get().cases.values_list("key", "expected", "source"))
    assert response["Location"] == f"{EVALS}datasets/{dataset.pk}/?version=1"
    assert cases == [
        ("req_traffic1", "Parcel 42 arrives Tuesday.", "request:req_traffic1"),
        (f"run-{run.pk}", {"label": "ok"}, f"run:{run.pk}"),
    ]


def test_picking_nothing_from_traffic_is_a_400_page(tenant: TenantFixture) -> None:
    response = tenant.web_client().post(f"{EVALS}datasets/from-traffic/", {"dataset": "empty"})

    assert response.status_code == 400
    assert "Pick at least one request or run." in html_of(response)
    with tenant_context(tenant.tenant):
        assert not Dataset.objects.filter(name="empty").exists()


# Isolation and forgery


def another_tenants_owner_on_their_host(other_tenant: TenantFixture) -> Client:
    return other_tenant.web_client()


def test_another_tenants_owner_finds_none_of_this_tenants_evals(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    experiment = make_experiment(tenant, make_version(tenant, cases=1), [True])
    with tenant_context(tenant.tenant):
        result = CaseResult.objects.get(experiment=experiment)
    outsider = another_tenants_owner_on_their_host(other_tenant)

    responses = [
        outsider.get(f"{EVALS}experiments/{experiment.pk}/"),
        outsider.get(f"{EVALS}experiments/{experiment.pk}/progress/"),
        outsider.get(f"{EVALS}datasets/{experiment.version.dataset_id}/"),
        outsider.get(f"{EVALS}datasets/{experiment.version.dataset_id}/export/"),
        outsider.post(f"{EVALS}results/{result.pk}/label/", {"label": "fail"}),
        outsider.post(f"{EVALS}experiments/{experiment.pk}/cancel/"),
    ]
    listing = html_of(outsider.get(EVALS))

    assert [response.status_code for response in responses] == [404] * 6
    assert experiment.pk not in listing
    assert label_of(tenant, result) is None


def test_an_anonymous_visitor_is_sent_to_sign_in(tenant: TenantFixture) -> None:
    experiment = make_experiment(tenant, make_version(tenant, cases=1), [True])
    path = f"{EVALS}experiments/{experiment.pk}/"

    response = tenant.web_client(logged_in=False).get(path)

    assert (response.status_code, response["Location"]) == (302, f"/login/?next={path}")


def test_the_forms_refuse_a_post_without_the_csrf_token(tenant: TenantFixture) -> None:
    version = make_version(tenant, cases=1)
    experiment = make_experiment(tenant, version, [True], status=ExperimentStatus.RUNNING)
    with tenant_context(tenant.tenant):
        result = CaseResult.objects.get(experiment=experiment)
    browser = tenant.web_client()
    browser.handler.enforce_csrf_checks = True

    posts = [
        browser.post(f"{EVALS}results/{result.pk}/label/", {"label": "fail"}),
        browser.post(f"{EVALS}new/", start_form(tenant, version)),
        browser.post(f"{EVALS}experiments/{experiment.pk}/cancel/"),
        browser.post(f"{EVALS}datasets/new/", {"name": "forged"}),
        browser.post(f"{EVALS}datasets/from-traffic/", {"dataset": "forged"}),
        browser.post(f"{EVALS}router/", {"sample": "10", "api_key": key_id(tenant)}),
    ]

    assert [response.status_code for response in posts] == [403] * 6
    assert label_of(tenant, result) is None
    with tenant_context(tenant.tenant):
        assert Experiment.objects.get(pk=experiment.pk).status == ExperimentStatus.RUNNING
        assert not Dataset.objects.filter(name="forged").exists()


def test_a_shipped_suite_is_listed_until_it_is_used_and_then_is_the_tenants(tenant: TenantFixture) -> None:
    browser = tenant.web_client()

    before = html_of(browser.get(f"{EVALS}datasets/"))
    response = browser.post(f"{EVALS}datasets/golden/", {"name": "golden-orders"})
    after = html_of(browser.get(f"{EVALS}datasets/"))

    with tenant_context(tenant.tenant):
        dataset = Dataset.objects.get(name="golden-orders")
        assert dataset.versions.get().cases.exists()
    assert response["Location"] == f"{EVALS}datasets/{dataset.pk}/"
    assert before.count('name="name" value="golden-') == 4
    assert after.count('name="name" value="golden-') == 3
    assert f'href="{EVALS}datasets/{dataset.pk}/">golden-orders</a>' in after


def test_an_unknown_suite_is_a_400_page(tenant: TenantFixture) -> None:
    response = tenant.web_client().post(f"{EVALS}datasets/golden/", {"name": "golden-nothing"})

    assert response.status_code == 400
    assert "No golden suite `golden-nothing`" in html_of(response)


def test_a_file_over_the_bound_is_refused_with_a_400_page(tenant: TenantFixture, settings: Any) -> None:
    settings.EVALS_IMPORT_MAX_BYTES = 64
    version = make_version(tenant, cases=0)
    line = json.dumps({"key": "long", "input": {"messages": [{"role": "user", "content": "x" * 100}]}})

    response = tenant.web_client().post(
        f"{EVALS}datasets/{version.dataset_id}/import/",
        {"file": SimpleUploadedFile("cases.jsonl", line.encode()), "format": "jsonl", "mode": "append"},
    )

    assert response.status_code == 400
    assert "The file exceeds 64 bytes." in html_of(response)


def test_the_evals_own_calls_are_not_offered_as_traffic(tenant: TenantFixture) -> None:
    body = {"messages": [{"role": "user", "content": "Judge this"}]}
    with tenant_context(tenant.tenant):
        RequestLog.objects.create(
            request_id="req_exp_0123_abc", request_body=body, status=200, created_at=timezone.now()
        )
    browser = tenant.web_client()

    page = browser.get(f"{EVALS}datasets/from-traffic/")
    picked = browser.post(
        f"{EVALS}datasets/from-traffic/", {"dataset": "judged", "request_ids": ["req_exp_0123_abc"]}
    )

    assert "req_exp_0123_abc" not in html_of(page)
    assert picked.status_code == 400
    assert "Select a valid choice" in html_of(picked)


def test_an_experiment_still_running_can_be_compared_on_the_cases_it_has_done(tenant: TenantFixture) -> None:
    version = make_version(tenant, cases=3)
    baseline = make_experiment(tenant, version, [True, True, True])
    running = make_experiment(tenant, version, [False], status=ExperimentStatus.RUNNING)

    response = tenant.web_client().get(f"{EVALS}compare/", {"baseline": baseline.pk, "candidate": running.pk})

    assert response.status_code == 200
    assert 'id="change-counts">1 / 0 / 0<' in html_of(response)


def test_a_long_comparison_is_paged_with_the_regressions_on_the_first_page(
    tenant: TenantFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(comparison_page, "ROWS_PER_PAGE", 2)
    version = make_version(tenant, cases=3)
    baseline = make_experiment(tenant, version, [True, True, True])
    candidate = make_experiment(tenant, version, [True, True, False])
    browser = tenant.web_client()
    query = {"baseline": baseline.pk, "candidate": candidate.pk}

    first = html_of(browser.get(f"{EVALS}compare/", query))
    second = html_of(browser.get(f"{EVALS}compare/", {**query, "page": "2"}))

    assert first.count("data-change=") == 2
    assert 'data-change="regressed"' in first
    assert second.count("data-change=") == 1
    assert f"?baseline={baseline.pk}&amp;candidate={candidate.pk}&amp;page=2" in first
