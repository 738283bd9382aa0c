"""Tenants, their domains and their API keys. All in the public schema."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone
from django_tenants.models import DomainMixin, TenantMixin

from aiaas.cors import ORIGIN_PATTERN
from aiaas.outbound import HOST_PATTERN
from routing.selectors import unknown_models_message
from tenants.gateway_cache import forget_keys_after_commit

SLUG_PATTERN = r"^[a-z](?:[a-z0-9-]{0,30}[a-z0-9])?$"
MAX_CORS_ORIGINS = 20
MAX_OUTBOUND_HOSTS = 50
MAX_OUTBOUND_PORTS = 20
# Bounds of a key's limit overrides, shared by the REST API and the dashboard.
MAX_RATE_LIMIT = 2**31 - 1  # PositiveIntegerField
MAX_TOKEN_BUDGET = 2**63 - 1  # PositiveBigIntegerField
# A USD amount as people write it: digits, at most 2 decimals ("25.00").
USD_AMOUNT = re.compile(r"[0-9]{1,10}(?:\.[0-9]{1,2})?")
# Slugs that would shadow the platform's own hosts or schemas.
RESERVED_SLUGS = frozenset(
    {
        "www",
        "api",
        "admin",
        "app",
        "static",
        "media",
        "mail",
        "public",
        "status",
        "docs",
        "billing",
        "stripe",
        "auth",
        "login",
        "signup",
        "help",
        "support",
        "dashboard",
    }
)


class TenantQuerySet(models.QuerySet["Tenant"]):
    """Updates and deletes tell the gateways to drop the tenants' keys, which they
    cache with the tenant (tenants/gateway_cache.py)."""

    def update(self, **kwargs: Any) -> int:
        tenant_ids = list(self.values_list("pk", flat=True))
        updated = super().update(**kwargs)
        forget_keys_after_commit(prefixes_of_tenants(tenant_ids))
        return updated

    def delete(self) -> tuple[int, dict[str, int]]:
        prefixes = prefixes_of_tenants(self.values_list("pk", flat=True))
        deleted = super().delete()
        forget_keys_after_commit(prefixes)
        return deleted


def prefixes_of_tenants(tenant_ids: Iterable[int]) -> list[str]:
    return list(ApiKey.objects.filter(tenant_id__in=list(tenant_ids)).values_list("prefix", flat=True))


def forget_tenants_after_commit(tenant_ids: Iterable[int]) -> None:
    """Once committed, the gateways drop these tenants' keys, which they cache with
    the tenant, its plan and its billing account: what a write of any of them calls."""
    forget_keys_after_commit(prefixes_of_tenants(tenant_ids))


class Tenant(TenantMixin):
    name = models.CharField(max_length=200)
    slug = models.CharField(
        max_length=32,
        unique=True,
        validators=[
            RegexValidator(
                SLUG_PATTERN, "Use 1-32 lowercase letters, digits and hyphens, starting with a letter."
            )
        ],
    )
    plan = models.ForeignKey(
        "billing.Plan", on_delete=models.PROTECT, related_name="tenants", null=True, blank=True
    )
    is_active = models.BooleanField(default=True)
    # Request logging (request_logs/): prompts and outputs, kept in the tenant's own schema.
    request_logging_enabled = models.BooleanField(
        default=False, help_text="Store each /v1 request's prompt and output in the tenant's schema."
    )
    request_log_retention_days = models.PositiveSmallIntegerField(
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
        help_text="Stored requests are deleted after this many days (1-365).",
    )
    # Browser pages that may call /v1 and /api with this tenant's keys (aiaas/cors.py);
    # empty, the default: none. Stored lowercased, as browsers send Origin.
    cors_allowed_origins = ArrayField(
        models.CharField(
            max_length=262,
            validators=[
                RegexValidator(f"^{ORIGIN_PATTERN.pattern}$", "Write an origin as scheme://host[:port].")
            ],
        ),
        default=list,
        blank=True,
        size=MAX_CORS_ORIGINS,
        help_text="Origins (https://app.example.com) whose pages may call the API with this tenant's keys.",
    )
    # Where agents' tools and URL ingestion may send requests (aiaas/outbound.py, ADR
    # 0042): empty lists mean any public host, on OUTBOUND_DEFAULT_PORTS.
    outbound_allowed_hosts = ArrayField(
        models.CharField(
            max_length=254,
            validators=[
                RegexValidator(
                    f"^(?:{HOST_PATTERN.pattern})$",
                    "Write a host as api.example.com, .example.com (with subdomains) or an address.",
                )
            ],
        ),
        default=list,
        blank=True,
        size=MAX_OUTBOUND_HOSTS,
        help_text="Hosts tools and URL ingestion may reach (.example.com: and subdomains); empty: any.",
    )
    outbound_allowed_ports = ArrayField(
        models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(65535)]),
        default=list,
        blank=True,
        size=MAX_OUTBOUND_PORTS,
        help_text="Ports tools and URL ingestion may reach; empty: the platform's default (80 and 443).",
    )
    # Signup through the public page leaves it empty until the owner opens the
    # link we email; until then the owner cannot sign in and the keys are refused
    # (docs/decisions/0013). Staff and `manage.py provision_tenant` set it at once.
    email_verified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    # Schemas are created by the provisioning service (tenants/services.py),
    # as copies of the template; never drop a schema by deleting a row.
    auto_create_schema = True
    auto_drop_schema = False
    objects = TenantQuerySet.as_manager()

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Saved, and once committed the gateways drop this tenant's keys."""
        adding = self._state.adding
        super().save(*args, **kwargs)  # type: ignore[no-untyped-call]
        if not adding:
            forget_keys_after_commit(prefixes_of_tenants([self.pk]))

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        prefixes = prefixes_of_tenants([self.pk])
        deleted: tuple[int, dict[str, int]] = super().delete(*args, **kwargs)  # type: ignore[no-untyped-call]
        forget_keys_after_commit(prefixes)
        return deleted

    def create_schema(
        self, check_if_exists: bool = False, sync_schema: bool = True, verbosity: int = 1
    ) -> bool:
        """The template's dump replayed (tenants/batch.py) where django-tenants would
        run its clone_schema(), whose catalog queries grow with every relation in
        the database: 20 s a tenant at 1,000 tenants, 55 s at 3,000 (bench/README.md).
        Without pg_dump (PG_DUMP unset, none on PATH), the template cloned. Either
        way the new schema has the template's structure and, of its rows, only the
        migration records, content types and permissions (docs/decisions/0041)."""
        from django.conf import settings
        from django.db import connection
        from django_tenants.utils import schema_exists

        from tenants.batch import clone_template, create_schema_from_template, pg_dump_available

        if not (sync_schema and settings.TENANT_CREATION_FAKES_MIGRATIONS):
            return bool(super().create_schema(check_if_exists, sync_schema, verbosity))  # type: ignore[no-untyped-call]
        if check_if_exists and schema_exists(self.schema_name):
            return False
        if pg_dump_available():
            create_schema_from_template(self.schema_name)
        else:
            clone_template(self.schema_name)
        connection.set_schema_to_public()  # type: ignore[attr-defined]  # django-tenants' backend
        return True

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def is_email_verified(self) -> bool:
        return self.email_verified_at is not None


class Domain(DomainMixin):
    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return self.domain


class ApiKeyScope(models.TextChoices):
    ADMIN = "admin", "Admin: manage keys and call every API"
    INFERENCE = "inference", "Inference: call the /v1 model API"
    READ = "read", "Read: read usage and resources through /api"


class ApiKeyPriority(models.TextChoices):
    """Which keys a degrade level sheds first (capacity/, docs/degrade.md)."""

    LOW = "low", "Low: shed first when the platform is degraded"
    NORMAL = "normal", "Normal"
    HIGH = "high", "High: never shed"


# Written on use (tenants.services.record_api_key_use) and read by no gateway.
UNCACHED_KEY_FIELDS = frozenset({"last_used_at"})


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    """Writes tell the gateways to drop the keys, or that their prefixes were
    unknown (tenants/gateway_cache.py)."""

    def bulk_create(self, *args: Any, **kwargs: Any) -> list[ApiKey]:
        created = super().bulk_create(*args, **kwargs)
        forget_keys_after_commit(api_key.prefix for api_key in created)
        return created

    def update(self, **kwargs: Any) -> int:
        if set(kwargs) <= UNCACHED_KEY_FIELDS:
            return super().update(**kwargs)
        prefixes = list(self.values_list("prefix", flat=True))
        updated = super().update(**kwargs)
        forget_keys_after_commit(prefixes)
        return updated

    def delete(self) -> tuple[int, dict[str, int]]:
        prefixes = list(self.values_list("prefix", flat=True))
        deleted = super().delete()
        forget_keys_after_commit(prefixes)
        return deleted


class ApiKey(models.Model):
    """A tenant's API key: a visible prefix plus a secret stored only as a hash.

    The full key reads `aiaas_<prefix>_<secret>`. The secret has 256 bits of
    entropy, so SHA-256 is as safe as a slow password hash against a leaked
    table and costs microseconds on every request; it does not depend on
    SECRET_KEY, so rotating that does not invalidate keys.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    scopes = ArrayField(models.CharField(max_length=20, choices=ApiKeyScope.choices), default=list)
    allowed_models = ArrayField(
        models.CharField(max_length=200), default=list, blank=True, help_text="Empty means every model."
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    priority = models.CharField(max_length=10, choices=ApiKeyPriority.choices, default=ApiKeyPriority.NORMAL)
    # Overrides of the plan's per-key limits; empty means the plan's.
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True)
    monthly_spend_budget_usd = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    monthly_token_budget = models.PositiveBigIntegerField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(
        max_length=254, blank=True, help_text="Who created it: a user's email or `key:<prefix>`."
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at"])]

    # Overrides of the plan's per-key limits (billing.limits.limits_for reads them).
    LIMIT_FIELDS = (
        "requests_per_minute",
        "tokens_per_minute",
        "monthly_spend_budget_usd",
        "monthly_token_budget",
    )

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Saved (created too), and once committed the gateways drop their copy of
        the key, or forget that its prefix was unknown."""
        super().save(*args, **kwargs)
        update_fields = kwargs.get("update_fields")
        if update_fields is None or not set(update_fields) <= UNCACHED_KEY_FIELDS:
            forget_keys_after_commit([self.prefix])

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        deleted = super().delete(*args, **kwargs)
        forget_keys_after_commit([self.prefix])
        return deleted

    def clean(self) -> None:
        """The admin's check: the allowed models are models of the registry."""
        super().clean()
        if refused := unknown_models_message(list(self.allowed_models)):
            raise ValidationError({"allowed_models": refused})

    @staticmethod
    def hash_secret(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    def secret_matches(self, secret: str) -> bool:
        return hmac.compare_digest(self.secret_hash, self.hash_secret(secret))

    def is_usable(self, now: datetime | None = None) -> bool:
        moment = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > moment)

    def has_scope(self, scope: str) -> bool:
        return ApiKeyScope.ADMIN in self.scopes or scope in self.scopes

    def allows_model(self, model: str) -> bool:
        return not self.allowed_models or model in self.allowed_models
