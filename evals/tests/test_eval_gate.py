"""`manage.py eval_gate`: one JSON object, exit 0 only when the gate passed. Run for
real on a golden suite (in this process, against the simulated provider with planted
answers), and on stored experiments."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import tenant_context

from evals import golden
from evals.models import Experiment
from evals.tests.factories import make_dataset, make_experiment
from evals.tests.golden_answers import right_answer
from ingestion.runtime import close_runtime
from testing.database import committed
from testing.tenants import TenantFixture

SUITE = "golden-orders"


def gate(*arguments: str) -> tuple[int, dict[str, Any]]:
    """(exit status, printed report) of `eval_gate --json <arguments>`."""
    out = io.StringIO()
    try:
        call_command("eval_gate", "--json", *arguments, stdout=out)
        status = 0
    except SystemExit as exit:
        status = int(exit.code or 0)
    return status, json.loads(out.getvalue())


def gate_committed(*arguments: str) -> tuple[int, dict[str, Any]]:
    """`gate` on a connection of its own, as a CI job runs it (its experiment is committed)."""

    def run() -> tuple[int, dict[str, Any]]:
        try:
            return gate(*arguments)
        finally:
            close_runtime()

    return committed(run)


@pytest.fixture
def simulator(registry: str, simulator_url: str) -> Iterator[str]:
    root = simulator_url.removesuffix("/v1")
    httpx.post(f"{root}/_sim/reset", timeout=5).raise_for_status()
    yield root
    httpx.post(f"{root}/_sim/reset", timeout=5).raise_for_status()


def plant(simulator: str, answers: dict[str, str]) -> None:
    """Each case's (user message: answer) planted in the simulated provider."""
    for content, answer in answers.items():
        body = {"when_contains": content, "content": answer}
        httpx.post(f"{simulator}/_sim/answers", json=body, timeout=5).raise_for_status()


def right_answers() -> dict[str, str]:
    suite = golden.suite(SUITE)
    return {case.input["messages"][-1]["content"]: right_answer(suite, case) for case in suite.cases()}


def test_a_suite_run_in_process_passes_then_fails_on_a_planted_regression(
    serving_tenant: TenantFixture, simulator: str
) -> None:
    answers = right_answers()
    plant(simulator, answers)
    slug = serving_tenant.tenant.slug

    status, report = gate_committed(
        "--tenant", slug, "--suite", SUITE, "--model", "sim-small", "--min-pass-rate", "1"
    )

    assert status == 0, report
    assert (report["suite"], report["n"], report["pass_rate"], report["passed"]) == (SUITE, 12, 1.0, True)
    assert (report["ci_low"], report["ci_high"]) == (1.0, 1.0)
    assert float(report["cost_usd"]) > 0
    first_question = next(iter(answers))
    plant(simulator, {first_question: '{"order_id": "NW-10001", "status": "shipped", "action": "none"}'})

    status, again = gate_committed(
        "--tenant", slug, "--suite", SUITE, "--model", "sim-small", "--baseline", report["experiment"]
    )

    assert status == 1, again
    assert (again["regressions"], again["regressed_cases"], again["passed"]) == (
        1,
        ["ord-paid-waiting"],
        False,
    )
    assert again["pass_rate"] == pytest.approx(11 / 12)
    assert again["reasons"] == ["1 cases regressed (at most 0 allowed)"]
    with tenant_context(serving_tenant.tenant):
        assert Experiment.objects.get(pk=again["experiment"]).version.dataset.name == SUITE


def test_manage_py_eval_gate_in_a_process_of_its_own_prints_only_its_report(
    serving_tenant: TenantFixture, simulator: str
) -> None:
    """As a CI job runs it: stdout is one JSON object, the exit status the verdict,
    and stderr has no error (the run's gateway sessions were left unclosed at exit)."""
    plant(simulator, right_answers())
    database = urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{connection.settings_dict['NAME']}")
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "testing.settings",
        "DATABASE_URL": database.geturl(),
    }
    arguments = ["--tenant", serving_tenant.tenant.slug, "--suite", SUITE, "--model", "sim-small"]

    run = subprocess.run(  # noqa: S603 (our own interpreter and manage.py)
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "eval_gate", *arguments, "--json"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )

    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert (report["suite"], report["n"], report["pass_rate"], report["passed"]) == (SUITE, 12, 1.0, True)
    assert "ERROR" not in run.stderr, run.stderr


def test_a_finished_experiment_is_gated_without_running_anything(tenant: TenantFixture) -> None:
    dataset = make_dataset(tenant, cases=2)
    baseline = make_experiment(tenant, dataset, {"case-1": True, "case-2": True})
    regressed = make_experiment(tenant, dataset, {"case-1": True, "case-2": False})
    slug = tenant.tenant.slug

    failed = gate("--tenant", slug, "--experiment", regressed.pk, "--baseline", baseline.pk)
    tolerated = gate(
        "--tenant", slug, "--experiment", regressed.pk, "--baseline", baseline.pk, "--max-regressions", "1"
    )
    unchanged = gate("--tenant", slug, "--experiment", baseline.pk, "--baseline", baseline.pk)

    assert (failed[0], failed[1]["regressions"], failed[1]["experiment"]) == (1, 1, regressed.pk)
    assert (tolerated[0], tolerated[1]["passed"]) == (0, True)
    assert (unchanged[0], unchanged[1]["regressions"], unchanged[1]["pass_rate"]) == (0, 0, 1.0)
    assert set(failed[1]) >= {
        "suite",
        "experiment",
        "n",
        "pass_rate",
        "ci_low",
        "ci_high",
        "cost_usd",
        "passed",
    }


def test_bad_arguments_are_a_usage_error(tenant: TenantFixture) -> None:
    slug = tenant.tenant.slug
    finished = make_experiment(tenant)
    calls = [
        ("--tenant", "no-such-tenant", "--experiment", "exp_x"),
        ("--tenant", slug, "--experiment", "exp_missing"),
        ("--tenant", slug, "--suite", "golden-orders"),
        ("--tenant", slug, "--suite", "no-such-dataset", "--model", "sim-small"),
        # As POST /api/v1/experiments/{id}/gate refuses them, not a gate that can never pass.
        ("--tenant", slug, "--experiment", finished.pk, "--min-pass-rate", "90"),
        ("--tenant", slug, "--experiment", finished.pk, "--max-regressions", "-1"),
    ]

    for arguments in calls:
        with pytest.raises(CommandError) as refused:
            call_command("eval_gate", "--json", *arguments, stdout=io.StringIO())
        assert refused.value.returncode == 2, arguments
