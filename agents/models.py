"""Agents and their runs. In the tenant's schema (TENANT_APPS): specs, inputs,
outputs and events are the tenant's content."""

from __future__ import annotations

from decimal import Decimal

from django.db import models


class Agent(models.Model):
    """A named workflow; each PUT adds an AgentVersion, runs use the version they started on."""

    name = models.CharField(max_length=100, unique=True)
    version = models.PositiveIntegerField(default=1, help_text="The latest version's number.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name


class AgentVersion(models.Model):
    """One immutable version of an agent's spec, as written (`source`) and as compiled (`spec`)."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    source = models.TextField()
    spec = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        constraints = [models.UniqueConstraint(fields=["agent", "version"], name="agents_version_unique")]

    def __str__(self) -> str:
        return f"{self.agent_id} v{self.version}"


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"


FINAL_STATUSES = frozenset(
    {
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.CANCELLED,
        RunStatus.COMPENSATED,
        RunStatus.COMPENSATION_FAILED,
    }
)


class Run(models.Model):
    """One execution of an agent version.

    The truth is the run's events (RunEvent); `status`, `output`, `error` and the
    totals are a projection of them, written in the same transaction as the
    event that changes them (agents/events.py). `spec` is the frozen compiled
    spec the run executes, so editing the agent never changes a run.
    """

    agent = models.ForeignKey(Agent, on_delete=models.SET_NULL, null=True, related_name="runs")
    agent_name = models.CharField(max_length=100)
    agent_version = models.PositiveIntegerField()
    spec = models.JSONField()
    input = models.JSONField()
    environment = models.CharField(max_length=50, blank=True)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal(0))
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    steps_executed = models.PositiveIntegerField(default=0)
    # ApiKey lives in the public schema: an id, not a foreign key across schemas.
    api_key_id = models.BigIntegerField(null=True, blank=True)
    stream_id = models.CharField(max_length=100, blank=True)
    # The run this one replays (episode replay), if any.
    replay_of = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Stamped by the executor while it holds the run (agents/heartbeat.py): the sweeper
    # resumes a `running` run whose heartbeat stopped (agents/sweeper.py).
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status"], name="agents_run_status")]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.agent_name}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINAL_STATUSES


class RunEvent(models.Model):
    """An append-only record of something that happened in a run, numbered from 1.

    `key` makes an event idempotent: a redelivered task that tries to record
    the same fact again (a step's success, a tool call's outcome) is refused
    by the unique constraint instead of recording it twice.
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=50)
    step_id = models.CharField(max_length=200, blank=True)
    key = models.CharField(max_length=300)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["run", "seq"], name="agents_event_seq_unique"),
            models.UniqueConstraint(fields=["run", "key"], name="agents_event_key_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.seq} {self.type}"
