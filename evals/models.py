"""Evals: datasets of cases, experiments that run a dataset against a target, and
each case's result. In the tenant's schema (TENANT_APPS): inputs, outputs and
judge reasoning are the tenant's content.

A dataset is versioned. A version's cases never change once an experiment has
used it (`DatasetVersion.locked_at`); editing a locked version makes a new
one. A case keeps its `key` across versions, so two experiments on different
versions of one dataset still compare case by case.

An experiment is one run of a dataset version against a target (a model, a
prompt template or an agent version) with a list of scorers. Its results are
written one per case (unique per experiment and case): a worker that dies
mid-experiment leaves the finished cases stored, and the next attempt calls
only the cases without a result. Each case's gateway call uses a request id
derived from the experiment and the case (`CaseResult.request_id_for`), so a
case called again after a crash is billed once by the ledger.
"""

from __future__ import annotations

import hashlib
import secrets

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


def new_experiment_id() -> str:
    return f"exp_{secrets.token_hex(12)}"


class Dataset(models.Model):
    name = models.SlugField(max_length=100, unique=True, help_text="golden-* names are the shipped suites.")
    description = models.TextField(blank=True)
    # The nightly run (evals/nightly.py): opted in by naming the model to run against;
    # a regression against the previous nightly experiment alerts the webhook and/or the email.
    nightly_model = models.CharField(max_length=200, blank=True)
    # The key that turned the nightly run on: its runs are billed to it (ApiKey is in public).
    nightly_api_key_id = models.BigIntegerField(null=True, blank=True)
    alert_webhook_url = models.URLField(max_length=2000, blank=True)
    alert_email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DatasetVersion(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    # Scorers applied to every case of this version, besides the case's own
    # (`[{"type": "contains", "value": "refund"}, ...]`, evals/scorers.py).
    assertions = models.JSONField(default=list, blank=True)
    # Set when the first experiment uses the version: from then on its cases are read-only.
    locked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dataset", "-version"]
        constraints = [models.UniqueConstraint(fields=["dataset", "version"], name="evals_version_unique")]

    def __str__(self) -> str:
        return f"{self.dataset.name} v{self.version}"


class Case(models.Model):
    version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="cases")
    key = models.CharField(max_length=200, help_text="Stable across versions: experiments compare by key.")
    position = models.PositiveIntegerField()
    # Chat messages (`{"messages": [...]}`), prompt variables (`{"variables": {...}}`)
    # or an agent input (`{"agent_input": {...}}`), per the target's kind.
    input = models.JSONField()
    expected = models.JSONField(null=True, blank=True)
    assertions = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=list, blank=True)
    # Where the case was made from, when it came from real traffic ("request:req_...", "run:42").
    source = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "key"], name="evals_case_key_unique"),
            models.UniqueConstraint(fields=["version", "position"], name="evals_case_position_unique"),
        ]

    def __str__(self) -> str:
        return self.key


class TargetKind(models.TextChoices):
    MODEL = "model"
    PROMPT = "prompt"
    AGENT = "agent"


class ExperimentStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_EXPERIMENT_STATUSES = (ExperimentStatus.QUEUED, ExperimentStatus.RUNNING)


class Experiment(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_experiment_id, editable=False)
    name = models.CharField(max_length=200, blank=True)
    version = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT, related_name="experiments")
    target_kind = models.CharField(max_length=10, choices=TargetKind.choices)
    # {"model": "auto", "quality_target": 0.9, "params": {...}}, {"prompt": "faq", "prompt_version": 3,
    # "model": ...} or {"agent": "support", "agent_version": 2}: validated by evals/targets.py.
    target = models.JSONField()
    # Experiment-wide scorers besides the version's and the cases' assertions, e.g. an LLM judge.
    scorers = models.JSONField(default=list, blank=True)
    # The experiment of the same dataset whose outputs a pairwise judge compares with.
    baseline = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    concurrency = models.PositiveSmallIntegerField(
        default=4, validators=[MinValueValidator(1), MaxValueValidator(32)]
    )
    status = models.CharField(
        max_length=10, choices=ExperimentStatus.choices, default=ExperimentStatus.QUEUED
    )
    error = models.TextField(blank=True)
    # {"n", "passed", "errors", "pass_rate", "ci_low", "ci_high" (the pass rate's 95% bootstrap
    #  interval), "mean_score", "score_ci_low", "score_ci_high", "cost_usd", "latency_ms": {"p50",
    #  "p95"}}: evals/statistics.py, written when it ends.
    aggregates = models.JSONField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    # The key the experiment's calls are attributed to (limits, budget, ledger).
    api_key_id = models.BigIntegerField()
    stream_id = models.CharField(max_length=100, blank=True)
    # Set by the nightly schedule; empty for experiments people started.
    schedule = models.CharField(max_length=50, blank=True)
    # When the nightly check compared this (nightly) experiment with the previous one.
    nightly_checked_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="evals_experiment_status")]

    def __str__(self) -> str:
        return self.id


class ResultStatus(models.TextChoices):
    SUCCEEDED = "succeeded"  # the target answered; the scores say whether it passed
    ERRORED = "errored"  # the target failed (gateway error, agent run failed): counts as not passed


class CaseResult(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="results")
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="results")
    status = models.CharField(max_length=10, choices=ResultStatus.choices)
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    # [{"scorer": "contains", "score": 1.0, "passed": true, "reason": "..."}, ...]
    scores = models.JSONField(default=list)
    passed = models.BooleanField()
    score = models.FloatField(help_text="Mean of the scores, 0 to 1.")
    latency_ms = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    request_ids = models.JSONField(default=list, help_text="Gateway requests of the target and the judges.")
    # A person's verdict on this output (pass/fail), against which the judge's agreement is measured.
    human_label = models.BooleanField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["experiment", "case__position"]
        constraints = [models.UniqueConstraint(fields=["experiment", "case"], name="evals_result_unique")]

    def __str__(self) -> str:
        return f"{self.experiment_id}:{self.case_id}"

    @staticmethod
    def request_id_for(experiment_id: str, case_key: str, call: str = "target") -> str:
        """The gateway request id of one call of one case, the same on every attempt."""
        digest = hashlib.sha256(f"{case_key}:{call}".encode()).hexdigest()[:20]
        return f"req_{experiment_id}_{digest}"


class AgentCaseRun(models.Model):
    """The agent run that answers one case of an experiment with an agent target: made
    once, so a resumed experiment resumes the run (its recorded steps are not repeated)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="agent_runs")
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="+")
    run = models.ForeignKey("agents.Run", on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "case"], name="evals_agent_run_unique")]

    def __str__(self) -> str:
        return f"{self.experiment_id}:{self.case_id} -> run {self.run_id}"
