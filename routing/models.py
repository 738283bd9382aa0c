"""The model registry (public schema): providers, the models they serve, aliases.

Staff edit it in the admin; the gateway reads an in-memory snapshot of it
(routing/catalog.py), so no request waits on these tables.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

# The model id that asks the router to choose.
ROUTED_MODEL = "auto"


class AuthStyle(models.TextChoices):
    BEARER = "bearer", "Authorization: Bearer (OpenAI, vLLM, Ollama, llama.cpp)"
    API_KEY_HEADER = "api-key", "api-key header (Azure OpenAI)"
    NONE = "none", "No credential"


class ProviderKind(models.TextChoices):
    OPENAI = "openai", "OpenAI-compatible HTTP endpoint"
    LOCAL = "local", "A model run inside the gateway process (gateway/providers/local.py)"


class Provider(models.Model):
    """An OpenAI-compatible endpoint, or the models the gateway runs itself (`local`).
    Real providers are added by configuration alone."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=ProviderKind.choices, default=ProviderKind.OPENAI)
    base_url = models.URLField(
        blank=True, help_text="Up to and including /v1, e.g. https://api.openai.com/v1 (blank when local)"
    )
    auth_style = models.CharField(max_length=10, choices=AuthStyle.choices, default=AuthStyle.BEARER)
    credential_env = models.CharField(
        max_length=100, blank=True, help_text="Environment variable holding the credential."
    )
    credential_file = models.CharField(
        max_length=500, blank=True, help_text="File holding the credential (read when the env var is unset)."
    )
    default_query = models.JSONField(
        default=dict,
        blank=True,
        help_text='Query parameters on every call, e.g. {"api-version": "2024-10-21"}.',
    )
    connect_timeout_seconds = models.FloatField(default=3.0, validators=[MinValueValidator(0.05)])
    first_token_timeout_seconds = models.FloatField(default=20.0, validators=[MinValueValidator(0.05)])
    total_timeout_seconds = models.FloatField(default=120.0, validators=[MinValueValidator(0.1)])
    max_concurrent_calls = models.PositiveIntegerField(default=64, validators=[MinValueValidator(1)])
    is_simulated = models.BooleanField(default=False, help_text="The project's simulated provider.")
    is_enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """An HTTP provider has a base URL; staff may name a credential only where
        settings allow: an environment variable with an allowed prefix, a file
        inside an allowed folder."""
        errors = {}
        if self.kind == ProviderKind.OPENAI and not self.base_url:
            errors["base_url"] = "An OpenAI-compatible provider needs its base URL."
        if self.credential_env and not credential_env_allowed(self.credential_env):
            prefixes = ", ".join(settings.PROVIDER_CREDENTIAL_ENV_PREFIXES)
            errors["credential_env"] = f"Use a variable whose name starts with one of: {prefixes}."
        if self.credential_file and not credential_file_allowed(self.credential_file):
            folders = ", ".join(settings.PROVIDER_CREDENTIAL_DIRS) or "(none allowed)"
            errors["credential_file"] = f"Use a file inside one of: {folders}."
        if errors:
            raise ValidationError(errors)


def credential_env_allowed(name: str) -> bool:
    return any(name.startswith(prefix) for prefix in settings.PROVIDER_CREDENTIAL_ENV_PREFIXES)


def credential_file_allowed(path: str) -> bool:
    """Inside an allowed folder once resolved (no `..`, no symlink out of it)."""
    resolved = Path(path).resolve()
    return any(
        resolved.is_relative_to(Path(folder).resolve()) for folder in settings.PROVIDER_CREDENTIAL_DIRS
    )


class ProviderModel(models.Model):
    """A model as clients name it, the provider serving it, its tier and its price."""

    model_id = models.CharField(max_length=200, unique=True, help_text="The id clients send.")
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="models")
    upstream_model = models.CharField(
        max_length=200, help_text="The model's name at the provider (an Azure deployment name, ...)."
    )
    tier = models.PositiveSmallIntegerField(validators=[MinValueValidator(1)], help_text="1 is the cheapest.")
    context_window = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    input_price_per_million = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    output_price_per_million = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    supports_chat = models.BooleanField(default=True)
    supports_json_mode = models.BooleanField(default=True)
    supports_embeddings = models.BooleanField(default=False)
    is_enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tier", "model_id"]

    def __str__(self) -> str:
        return self.model_id


class ModelAlias(models.Model):
    alias = models.CharField(max_length=200, unique=True)
    target = models.ForeignKey(ProviderModel, on_delete=models.CASCADE, related_name="aliases")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["alias"]
        verbose_name_plural = "model aliases"

    def __str__(self) -> str:
        return f"{self.alias} -> {self.target}"

    def clean(self) -> None:
        if self.alias == ROUTED_MODEL or ProviderModel.objects.filter(model_id=self.alias).exists():
            raise ValidationError({"alias": "An alias may not shadow `auto` or a model id."})


ROUTER_ARTIFACT = re.compile(r"[A-Za-z0-9_.-]+\.npz")
DEFAULT_ROUTER_VERSION = "global-v1"


class RouterVersion(models.Model):
    """A version of the `auto` router: its classifier and how it leans.

    `artifact` names a classifier file in routing/router/ (trained by
    `manage.py train_router`); `threshold_shift` moves the P(cheap tier fails)
    threshold the quality target yields (positive: more requests stay on the cheap
    tier). A new version reaches tenants as a canary first (TenantRouting).
    """

    name = models.SlugField(max_length=50, unique=True)
    description = models.CharField(max_length=200, blank=True)
    artifact = models.CharField(max_length=100, default="global_router.npz")
    threshold_shift = models.FloatField(
        default=0.0, validators=[MinValueValidator(-1.0), MaxValueValidator(1.0)]
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not ROUTER_ARTIFACT.fullmatch(self.artifact):
            raise ValidationError({"artifact": "A file name in routing/router/, ending in .npz."})


class CanaryState(models.TextChoices):
    NONE = "none", "No canary"
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed (no quality drop)"
    ROLLED_BACK = "rolled_back", "Rolled back (quality dropped)"


class TenantRouting(models.Model):
    """A tenant's router settings (public schema, keyed by tenant): its quality
    target and, when staff start one, a canary version with a share of traffic."""

    tenant = models.OneToOneField("tenants.Tenant", on_delete=models.CASCADE, related_name="routing")
    quality_target = models.DecimalField(
        max_digits=3,
        decimal_places=2,
        default=Decimal("0.95"),
        validators=[MinValueValidator(Decimal("0.80")), MaxValueValidator(Decimal("1.00"))],
        help_text="Share of the top tier's quality to keep, 0.80 to 1.00.",
    )
    exploration_rate = models.DecimalField(
        max_digits=3,
        decimal_places=2,
        default=Decimal("0.02"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("0.10"))],
        help_text="Share of requests sent one tier cheaper than chosen, to keep learning (at most 0.10).",
    )
    control = models.ForeignKey(
        RouterVersion, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    canary = models.ForeignKey(
        RouterVersion, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    canary_share = models.DecimalField(
        max_digits=3,
        decimal_places=2,
        default=Decimal("0.05"),
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal("0.50"))],
    )
    canary_state = models.CharField(max_length=20, choices=CanaryState.choices, default=CanaryState.NONE)
    canary_max_quality_drop = models.DecimalField(
        max_digits=3,
        decimal_places=2,
        default=Decimal("0.05"),
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal("0.50"))],
        help_text="The canary is rolled back when its failure rate exceeds the control's by this much.",
    )
    canary_started_at = models.DateTimeField(null=True, blank=True)
    canary_decided_at = models.DateTimeField(null=True, blank=True)
    canary_verdict = models.CharField(max_length=300, blank=True)
    # The tenant's learned outcomes (routing/router/outcomes.py), copied from Redis
    # by beat; they seed Redis again if it loses them.
    outcomes_snapshot = models.JSONField(default=dict, blank=True)
    outcomes_snapshot_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "tenant routing"
        verbose_name_plural = "tenant routing"

    def __str__(self) -> str:
        return f"routing of {self.tenant_id}"

    def clean(self) -> None:
        if self.canary_id is not None and self.canary_id == self.control_id:
            raise ValidationError({"canary": "The canary must differ from the control version."})


class KeptJudgements(models.Model):
    """A copy of a tenant's kept judgements under one router version (the Redis list
    routing/router/ranking.py fits the tenant's ranking to), taken by beat with the
    outcomes; it seeds Redis again if Redis loses the list."""

    routing = models.ForeignKey(TenantRouting, on_delete=models.CASCADE, related_name="kept_judgements")
    version = models.SlugField(max_length=50)
    # The list as Redis holds it, newest first: ranking.ENTRY_BYTES per judgement.
    entries = models.BinaryField()
    # How many judgements the tenant's outcomes counted under the version when copied:
    # the list is copied again only once it has grown.
    judgements = models.FloatField()
    taken_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "kept judgements"
        constraints = [
            models.UniqueConstraint(fields=["routing", "version"], name="routing_kept_judgements_once"),
        ]

    def __str__(self) -> str:
        return f"judgements of {self.routing_id} under {self.version}"
