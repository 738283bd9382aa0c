"""The nightly run: each dataset a tenant opted in (`Dataset.nightly_model`) runs once a
day against that model, billed to the key that opted it in; when the run is over it
is gated against the dataset's previous successful nightly run (evals/gate.py), and a
regression, or a run that did not succeed, alerts the dataset's webhook and email.

`tick` (beat, every EVALS_NIGHTLY_TICK_SECONDS) spans every tenant and does both
halves; each is idempotent:

- start: from EVALS_NIGHTLY_HOUR (UTC), a dataset with no nightly experiment made
  that day gets one, under the dataset's row lock. It is queued on the evals
  queue like any experiment (a crashed worker's run resumes, the sweeper finds it).
- check: an ended nightly experiment not yet checked is claimed by a conditional
  UPDATE of `nightly_checked_at`, so two ticks never alert twice; an alert that
  cannot be delivered (the webhook down) is logged, not retried.

Webhooks go through aiaas/outbound.py with the tenant's outbound policy: public hosts
only (EVALS_ALERT_ALLOWED_HOSTS exempts some), an explicit timeout, redirects not followed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import smtplib
from datetime import datetime
from typing import Any

import aiohttp
from django.conf import settings
from django.core.mail import send_mail
from django.db import ProgrammingError, transaction
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context

from aiaas import outbound
from evals.datasets import latest_version
from evals.gate import GateRule, gate_report, model_target
from evals.models import ACTIVE_EXPERIMENT_STATUSES, Dataset, Experiment, ExperimentStatus, TargetKind
from evals.services import ExperimentInputError, create_experiment
from tenants.models import ApiKey, Tenant
from tenants.selectors import current_outbound_policy

logger = logging.getLogger(__name__)

NIGHTLY = "nightly"
ALERT_RESPONSE_MAX_BYTES = 64 * 1024


def tick(now: datetime | None = None) -> None:
    """Start the nightly runs that are due and check the ended ones, in every tenant. A
    tenant whose schema cannot be read is logged and skipped."""
    moment = now or timezone.now()
    with schema_context(get_public_schema_name()):
        schemas = list(
            Tenant.objects.exclude(schema_name=get_public_schema_name()).values_list("schema_name", flat=True)
        )
    for schema in schemas:
        try:
            with schema_context(schema):
                tick_schema(moment)
        except ProgrammingError:
            logger.exception("evals: cannot run the nightly tick in the schema %s", schema)


def tick_schema(moment: datetime) -> None:
    if moment.hour >= settings.EVALS_NIGHTLY_HOUR:
        for dataset_id in Dataset.objects.exclude(nightly_model="").values_list("pk", flat=True):
            start_nightly(dataset_id, moment)
    ended = Experiment.objects.filter(schedule=NIGHTLY, nightly_checked_at__isnull=True).exclude(
        status__in=ACTIVE_EXPERIMENT_STATUSES
    )
    for experiment_id in ended.values_list("pk", flat=True):
        check_nightly(experiment_id, moment)


def start_nightly(dataset_id: int, moment: datetime) -> Experiment | None:
    """Today's nightly experiment of the dataset, unless it has one (or cannot have one)."""
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    with transaction.atomic():
        dataset = Dataset.objects.select_for_update().get(pk=dataset_id)
        runs = Experiment.objects.filter(version__dataset=dataset, schedule=NIGHTLY, created_at__gte=midnight)
        if not dataset.nightly_model or runs.exists():
            return None
        api_key = nightly_key(dataset)
        if api_key is None:
            logger.warning("evals: the nightly run of %s has no usable key", dataset.name)
            return None
        try:
            return create_experiment(
                latest_version(dataset),
                TargetKind.MODEL,
                model_target(dataset, dataset.nightly_model),
                [],
                settings.EVALS_NIGHTLY_CONCURRENCY,
                api_key,
                name=f"nightly: {dataset.nightly_model}",
                schedule=NIGHTLY,
            )
        except ExperimentInputError as error:
            logger.warning("evals: the nightly run of %s cannot start: %s", dataset.name, error.message)
            return None


def nightly_key(dataset: Dataset) -> ApiKey | None:
    if dataset.nightly_api_key_id is None:
        return None
    key = ApiKey.objects.filter(pk=dataset.nightly_api_key_id).select_related("tenant").first()
    return key if key is not None and key.is_usable() else None


def check_nightly(experiment_id: str, moment: datetime) -> dict[str, Any] | None:
    """Gate the ended nightly experiment against the previous successful one, once; the
    report, alerted on when it did not pass (None if another tick claimed it)."""
    claimed = Experiment.objects.filter(pk=experiment_id, nightly_checked_at__isnull=True).update(
        nightly_checked_at=moment
    )
    if not claimed:
        return None
    experiment = Experiment.objects.select_related("version__dataset").get(pk=experiment_id)
    dataset = experiment.version.dataset
    previous = (
        Experiment.objects.filter(
            version__dataset=dataset,
            schedule=NIGHTLY,
            status=ExperimentStatus.SUCCEEDED,
            created_at__lt=experiment.created_at,
        )
        .order_by("-created_at")
        .first()
    )
    report = gate_report(experiment, previous, GateRule())
    if not report["passed"]:
        alert(dataset, report)
    return report


def alert(dataset: Dataset, report: dict[str, Any]) -> None:
    payload = {"type": "evals.nightly_regression", "dataset": dataset.name, "report": report}
    if dataset.alert_webhook_url:
        post_webhook(dataset.alert_webhook_url, payload)
    if dataset.alert_email:
        email(dataset.alert_email, dataset.name, report)


def post_webhook(url: str, payload: dict[str, Any]) -> None:
    try:
        status, _, _ = asyncio.run(
            outbound.request(
                "POST",
                url,
                policy=current_outbound_policy(settings.EVALS_ALERT_ALLOWED_HOSTS),
                timeout_seconds=settings.EVALS_ALERT_TIMEOUT_SECONDS,
                max_bytes=ALERT_RESPONSE_MAX_BYTES,
                json_body=payload,
            )
        )
    except (outbound.ForbiddenTargetError, outbound.ResponseTooLargeError, aiohttp.ClientError, TimeoutError):
        logger.exception("evals: the nightly alert to %s failed", url)
        return
    if status >= 300:
        logger.warning("evals: the nightly alert to %s was answered %s", url, status)


def email(address: str, dataset_name: str, report: dict[str, Any]) -> None:
    subject = f"Eval regression: {dataset_name} ({report['experiment']})"
    body = "\n".join(
        [
            f"The nightly run of {dataset_name} did not pass: {'; '.join(report['reasons'])}.",
            f"Regressed cases: {', '.join(report['regressed_cases']) or 'none'}.",
            "",
            json.dumps(report, indent=2),
        ]
    )
    try:
        send_mail(subject, body, None, [address])
    except (smtplib.SMTPException, OSError):
        logger.exception("evals: the nightly alert email to %s failed", address)
