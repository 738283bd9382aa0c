"""Staff's pages for tenants and keys. Every change they make, one object or an
action over many, reaches the gateways' caches once it commits: the models
announce their writes (tenants/gateway_cache.py)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django_tenants.admin import TenantAdminMixin

from tenants.models import ApiKey, Domain, Tenant
from tenants.services import (
    normalized_outbound_policy,
    revoke_api_key,
    set_cors_allowed_origins,
    set_outbound_policy,
    set_tenants_active,
)


class DomainInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Domain
    extra = 0


class TenantForm(forms.ModelForm):  # type: ignore[type-arg]
    def clean(self) -> dict[str, Any]:
        """The outbound policy's rules (the platform's ports) as form errors, not a 500."""
        cleaned = super().clean() or {}
        if "outbound_allowed_hosts" in cleaned and "outbound_allowed_ports" in cleaned:
            normalized_outbound_policy(cleaned["outbound_allowed_hosts"], cleaned["outbound_allowed_ports"])
        return cleaned


@admin.register(Tenant)
class TenantAdmin(TenantAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg,misc]
    form = TenantForm
    list_display = (
        "slug",
        "name",
        "schema_name",
        "plan",
        "is_active",
        "request_logging_enabled",
        "created_at",
    )
    list_filter = ("is_active", "plan", "request_logging_enabled")
    search_fields = ("slug", "name", "schema_name")
    readonly_fields = ("schema_name", "created_at", "updated_at")
    inlines = [DomainInline]
    actions = ["deactivate", "activate"]

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        """CORS origins and the outbound policy through their services: normalized,
        checked against the platform's ports, and the caches told."""
        origins = form.cleaned_data.get("cors_allowed_origins", obj.cors_allowed_origins)
        hosts = form.cleaned_data.get("outbound_allowed_hosts", obj.outbound_allowed_hosts)
        ports = form.cleaned_data.get("outbound_allowed_ports", obj.outbound_allowed_ports)
        super().save_model(request, obj, form, change)
        set_cors_allowed_origins(obj, origins)
        set_outbound_policy(obj, hosts=hosts, ports=ports)

    @admin.action(description="Deactivate the selected tenants (their keys are refused at once)")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        changed = set_tenants_active(queryset, active=False)
        self.message_user(request, f"{changed} tenant(s) deactivated.", messages.SUCCESS)

    @admin.action(description="Activate the selected tenants")
    def activate(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        changed = set_tenants_active(queryset, active=True)
        self.message_user(request, f"{changed} tenant(s) activated.", messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Tenants are provisioned (schema clone, owner, key) by the signup page
        # or `manage.py provision_tenant`, never by a bare row insert.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("domain", "tenant", "is_primary")
    search_fields = ("domain", "tenant__slug")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Keys are shown by prefix only; the secret hash is never displayed."""

    list_display = (
        "prefix",
        "name",
        "tenant",
        "scopes",
        "priority",
        "expires_at",
        "revoked_at",
        "last_used_at",
    )
    list_filter = ("revoked_at", "priority")
    actions = ["revoke"]
    search_fields = ("prefix", "name", "tenant__slug")
    fields = (
        "tenant",
        "name",
        "prefix",
        "scopes",
        "allowed_models",
        "expires_at",
        "priority",
        # Overrides of the plan's per-key limits; empty means the plan's.
        "requests_per_minute",
        "tokens_per_minute",
        "monthly_token_budget",
        "monthly_spend_budget_usd",
        "revoked_at",
        "last_used_at",
        "created_by",
        "created_at",
    )
    readonly_fields = ("tenant", "prefix", "last_used_at", "created_by", "created_at")

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = sum(revoke_api_key(api_key) for api_key in queryset)
        self.message_user(request, f"{revoked} key(s) revoked.", messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a key made here could never be shown to anyone
