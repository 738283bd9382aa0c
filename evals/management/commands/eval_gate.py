from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import tenant_context

from evals import gate
from evals.datasets import DatasetInputError
from evals.models import ACTIVE_EXPERIMENT_STATUSES, Experiment
from evals.selectors import ComparisonError
from evals.services import ExperimentInputError
from ingestion.runtime import close_runtime
from tenants.models import Tenant

USAGE_ERROR = 2  # bad arguments or data; 1 is reserved for "the gate failed"


class Command(BaseCommand):
    help = (
        "Run an eval suite against a model in this process (or take a finished experiment) and "
        "decide a deploy gate: prints one JSON object with --json, exits 0 only when the gate "
        "passed (1: failed, 2: bad arguments). The run is billed to one of the tenant's keys."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="The tenant's slug.")
        parser.add_argument("--suite", help="A dataset's name (a golden-* suite is copied on first use).")
        parser.add_argument("--model", help="The model to run the suite against (or `auto`).")
        parser.add_argument("--experiment", help="Gate this finished experiment instead of running one.")
        parser.add_argument("--baseline", help="An experiment of the same dataset to compare with.")
        parser.add_argument("--min-pass-rate", type=float, help="Fail below this pass rate (0 to 1).")
        parser.add_argument(
            "--max-regressions",
            type=int,
            help="Fail above this many regressions (default 0 with --baseline).",
        )
        parser.add_argument(
            "--key-prefix",
            help="Bill the run to the tenant's key with this prefix "
            "(default: its oldest admin or inference key).",
        )
        parser.add_argument("--concurrency", type=int, default=4, help="Cases called at once (1-32).")
        parser.add_argument("--json", action="store_true", help="Print the report as one JSON object.")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant `{options['tenant']}`.", returncode=USAGE_ERROR)
        try:
            with tenant_context(tenant):
                report = self.report(tenant, options)
        except (DatasetInputError, ExperimentInputError, ComparisonError) as error:
            raise CommandError(str(error), returncode=USAGE_ERROR) from None
        finally:
            close_runtime()  # the run's gateway clients, or each exit logs their unclosed sessions
        if options["json"]:
            self.stdout.write(json.dumps(report))
        else:
            self.stdout.write(summary(report))
        if not report["passed"]:
            sys.exit(1)

    def report(self, tenant: Tenant, options: dict[str, Any]) -> dict[str, Any]:
        rule = gate.GateRule(options["min_pass_rate"], options["max_regressions"])
        if rule.min_pass_rate is not None and not 0 <= rule.min_pass_rate <= 1:
            raise CommandError("--min-pass-rate is a rate, from 0 to 1.", returncode=USAGE_ERROR)
        if rule.max_regressions is not None and rule.max_regressions < 0:
            raise CommandError("--max-regressions is a count, at least 0.", returncode=USAGE_ERROR)
        baseline = finished(options["baseline"], "--baseline") if options["baseline"] else None
        if options["experiment"]:
            experiment = finished(options["experiment"], "--experiment")
        else:
            if not options["suite"] or not options["model"]:
                raise CommandError("Give --suite and --model, or --experiment.", returncode=USAGE_ERROR)
            dataset = gate.suite_dataset(options["suite"])
            api_key = gate.billed_key(tenant, options["key_prefix"])
            experiment = gate.run_suite(dataset, options["model"], api_key, options["concurrency"])
        return gate.gate_report(experiment, baseline, rule)


def finished(experiment_id: str, option: str) -> Experiment:
    experiment = Experiment.objects.select_related("version__dataset").filter(pk=experiment_id).first()
    if experiment is None:
        raise CommandError(f"{option}: no experiment `{experiment_id}`.", returncode=USAGE_ERROR)
    if experiment.status in ACTIVE_EXPERIMENT_STATUSES:
        raise CommandError(
            f"{option}: `{experiment_id}` is still {experiment.status}.", returncode=USAGE_ERROR
        )
    return experiment


def summary(report: dict[str, Any]) -> str:
    verdict = "PASSED" if report["passed"] else "FAILED: " + "; ".join(report["reasons"])
    rate = "n/a" if report["pass_rate"] is None else f"{report['pass_rate']:.3f}"
    return (
        f"{report['suite']} {report['experiment']}: pass rate {rate} "
        f"(95% CI {report['ci_low']}-{report['ci_high']}, n={report['n']}), "
        f"regressions {report['regressions']}, cost ${report['cost_usd']}: {verdict}"
    )
