"""Writes for tenants and API keys: provisioning, key issue and revocation."""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django_tenants.utils import schema_exists, tenant_context

from accounts.models import Role, User
from accounts.throttling import SIGNUPS, SIGNUPS_PER_IP, VERIFICATION_EMAILS_PER_TENANT, tenant_scope
from aiaas.cors import normalized_origins
from aiaas.outbound import HOST_PATTERN, is_exemptable, is_permitted_port
from billing.models import Plan
from tenants.cors import known_origins
from tenants.models import (
    MAX_CORS_ORIGINS,
    MAX_OUTBOUND_HOSTS,
    MAX_OUTBOUND_PORTS,
    RESERVED_SLUGS,
    SLUG_PATTERN,
    ApiKey,
    ApiKeyPriority,
    ApiKeyScope,
    Domain,
    Tenant,
)
from tenants.rejected_keys import rejected_api_keys

API_KEY_PREFIX_LENGTH = 12
_ALPHABET = string.ascii_letters + string.digits
logger = logging.getLogger(__name__)


class ProvisioningError(Exception):
    """A tenant could not be provisioned; the message is one line for the user."""


@dataclass(frozen=True)
class IssuedApiKey:
    api_key: ApiKey
    secret: str  # the full key, shown once and never stored


@dataclass(frozen=True)
class NewTenant:
    tenant: Tenant
    domain: Domain
    owner: User
    owner_password: str | None  # only when generated here


@dataclass(frozen=True)
class ProvisionedTenant:
    tenant: Tenant
    domain: Domain
    owner: User
    owner_password: str | None  # only when generated here
    issued_key: IssuedApiKey

    def as_json(self) -> dict[str, str]:
        data = {
            "tenant": self.tenant.slug,
            "schema": self.tenant.schema_name,
            "domain": self.domain.domain,
            "owner_email": self.owner.email,
            "api_key": self.issued_key.secret,
        }
        if self.owner_password is not None:
            data["owner_password"] = self.owner_password
        return data


def tenant_domain_name(slug: str) -> str:
    return f"{slug}.{settings.BASE_DOMAIN}"


def schema_name_for(slug: str) -> str:
    return "t_" + slug.replace("-", "_")


def validate_slug(slug: str) -> None:
    """Raise ProvisioningError unless `slug` is well-formed, allowed and free."""
    if not re.fullmatch(SLUG_PATTERN, slug) or "--" in slug:
        raise ProvisioningError(
            f"invalid slug {slug!r}: use 1-32 lowercase letters, digits and single hyphens, "
            "starting with a letter and not ending with a hyphen"
        )
    if slug in RESERVED_SLUGS:
        raise ProvisioningError(f"slug {slug!r} is reserved")
    if (
        Tenant.objects.filter(slug=slug).exists()
        or Domain.objects.filter(domain=tenant_domain_name(slug)).exists()
        or schema_exists(schema_name_for(slug))
    ):
        raise ProvisioningError(f"slug {slug!r} is taken")


def ensure_template_schema(verbosity: int = 0) -> None:
    """Create and migrate the schema new tenants are cloned from (idempotent)."""
    template = settings.TENANT_BASE_SCHEMA
    if not schema_exists(template):
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{template}"')
    call_command("migrate_schemas", tenant=True, schema_name=template, interactive=False, verbosity=verbosity)


@functools.cache
def known_migrations() -> frozenset[tuple[str, str]]:
    """Every migration in the code (django-tenants records all apps in every schema)."""
    from django.db.migrations.loader import MigrationLoader

    return frozenset(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)


def assert_template_is_current() -> None:
    """Refuse to clone a template that lacks migrations the code has.

    Cloning fakes every known migration as applied, so a stale template would
    give the new tenant a schema silently missing the newest tables.
    """
    template = settings.TENANT_BASE_SCHEMA
    if not schema_exists(template):
        raise ProvisioningError("the tenant template schema is missing: run `manage.py bootstrap`")
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT app, name FROM "{template}".django_migrations')  # noqa: S608 - a setting
        applied = set(cursor.fetchall())
    if not known_migrations() <= applied:
        raise ProvisioningError(
            "the tenant template is behind the code's migrations: run `manage.py bootstrap`"
        )


def ensure_public_tenant() -> Tenant:
    """The public tenant and the apex domain (idempotent)."""
    tenant, _ = Tenant.objects.get_or_create(
        schema_name=settings.PUBLIC_SCHEMA_NAME,
        defaults={"name": "Public", "slug": "public"},
    )
    Domain.objects.get_or_create(domain=settings.BASE_DOMAIN, defaults={"tenant": tenant, "is_primary": True})
    return tenant


def resolve_plan(plan_slug: str | None) -> Plan | None:
    if plan_slug is None:
        return Plan.objects.filter(is_default=True).first()
    try:
        return Plan.objects.get(slug=plan_slug)
    except Plan.DoesNotExist:
        known = ", ".join(Plan.objects.values_list("slug", flat=True)) or "none"
        raise ProvisioningError(f"unknown plan {plan_slug!r} (known: {known})") from None


def provision_tenant(
    *,
    slug: str,
    name: str,
    owner_email: str,
    plan_slug: str | None = None,
    owner_password: str | None = None,
    email_verified: bool = True,
) -> ProvisionedTenant:
    """Create a tenant (create_tenant) with an admin key, whose secret the caller
    shows: staff's and the CLI's way, which vouch for the owner's email
    (`email_verified`)."""
    created = create_tenant(
        slug=slug,
        name=name,
        owner_email=owner_email,
        plan_slug=plan_slug,
        owner_password=owner_password,
        email_verified=email_verified,
    )
    try:
        issued = create_api_key(
            created.tenant,
            name="Default admin key",
            scopes=[ApiKeyScope.ADMIN],
            created_by=created.owner.email,
        )
    except Exception:
        created.tenant.delete(force_drop=True)
        raise
    return ProvisionedTenant(created.tenant, created.domain, created.owner, created.owner_password, issued)


def create_tenant(
    *,
    slug: str,
    name: str,
    owner_email: str,
    plan_slug: str | None = None,
    owner_password: str | None = None,
    email_verified: bool = True,
) -> NewTenant:
    """Create a tenant: its schema (cloned from the template), domain and owner, and no key.

    The public signup (sign_up_tenant) does not vouch for the owner's email,
    and emails a link instead. The owner's password is validated before
    anything is written. If any step after the schema exists fails, the tenant
    row and its schema are removed, so a failed signup leaves nothing behind
    and the slug stays free.
    """
    slug = slug.strip().lower()
    name = name.strip()
    if not name:
        raise ProvisioningError("name must not be empty")
    validate_slug(slug)
    plan = resolve_plan(plan_slug)
    generated_password = None
    if owner_password is None:
        generated_password = owner_password = secrets.token_urlsafe(18)
    validate_owner(owner_email, owner_password)
    assert_template_is_current()

    tenant = Tenant(
        schema_name=schema_name_for(slug),
        slug=slug,
        name=name,
        plan=plan,
        email_verified_at=timezone.now() if email_verified else None,
    )
    tenant.save(verbosity=0)  # copies the template schema (Tenant.create_schema)
    try:
        with transaction.atomic():
            domain = Domain.objects.create(domain=tenant_domain_name(slug), tenant=tenant, is_primary=True)
            with tenant_context(tenant):
                owner = User.objects.create_user(owner_email, owner_password, role=Role.OWNER)
    except Exception:
        tenant.delete(force_drop=True)
        raise
    return NewTenant(tenant, domain, owner, generated_password)


def validate_owner_email(email: str) -> None:
    from django.core.validators import validate_email

    try:
        validate_email(email)
    except ValidationError:
        raise ProvisioningError(f"invalid owner email {email!r}") from None
    if len(email) > User._meta.get_field("email").max_length:  # type: ignore[operator]
        raise ProvisioningError(f"invalid owner email {email!r}: longer than an account holds")


def validate_owner(email: str, password: str) -> None:
    from django.contrib.auth.password_validation import validate_password

    validate_owner_email(email)
    try:
        validate_password(password, User(email=email))
    except ValidationError as error:
        raise ProvisioningError("owner password: " + " ".join(error.messages)) from None


def generate_api_key_secret() -> tuple[str, str, str]:
    """Return (prefix, secret, full key); the full key is `aiaas_<prefix>_<secret>`."""
    prefix = "".join(secrets.choice(_ALPHABET) for _ in range(API_KEY_PREFIX_LENGTH))
    secret = secrets.token_urlsafe(32)
    return prefix, secret, f"aiaas_{prefix}_{secret}"


def create_api_key(
    tenant: Tenant,
    *,
    name: str,
    scopes: list[str],
    expires_at: datetime | None = None,
    allowed_models: list[str] | None = None,
    created_by: str = "",
    priority: str = ApiKeyPriority.NORMAL,
    **limit_overrides: Any,
) -> IssuedApiKey:
    """Issue a key; `limit_overrides` are ApiKey.LIMIT_FIELDS (None: the plan's).

    Its prefix is forgotten by every process that remembered it as unknown
    (tenants/rejected_keys.py): here at once, in the gateways once it commits.
    """
    prefix, secret, full_key = generate_api_key_secret()
    rejected_api_keys.forget_prefix(prefix)
    api_key = ApiKey.objects.create(
        tenant=tenant,
        name=name,
        prefix=prefix,
        secret_hash=ApiKey.hash_secret(secret),
        scopes=sorted(set(scopes)),
        expires_at=expires_at,
        allowed_models=allowed_models or [],
        created_by=created_by,
        priority=ApiKeyPriority(priority),
        **checked_limit_fields(limit_overrides),
    )
    return IssuedApiKey(api_key=api_key, secret=full_key)


def update_api_key(api_key: ApiKey, changes: dict[str, Any]) -> ApiKey:
    """Rename a key, or change its priority or limit overrides.

    Only the changed columns are written, so a concurrent write of another
    (last_used_at) survives; gateway processes drop their cached copy at once.
    """
    allowed = {"name", "priority", *ApiKey.LIMIT_FIELDS}
    if unknown := set(changes) - allowed:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    for field, value in changes.items():
        setattr(api_key, field, value)
    api_key.save(update_fields=list(changes))
    return api_key


def checked_limit_fields(overrides: dict[str, Any]) -> dict[str, Any]:
    if unknown := set(overrides) - set(ApiKey.LIMIT_FIELDS):
        raise TypeError(f"unknown limit overrides: {', '.join(sorted(unknown))}")
    return overrides


def revoke_api_key(api_key: ApiKey) -> bool:
    """Revoke once; returns False if it was already revoked.

    Every gateway process drops the key from its cache once this commits
    (tenants/gateway_cache.py).
    """
    now = timezone.now()
    updated = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now)
    if updated:
        api_key.revoked_at = now
    return bool(updated)


def record_api_key_use(api_key: ApiKey) -> None:
    """Refresh last_used_at at most once a minute per key, not once per request."""
    from django.core.cache import cache

    if cache.add(f"api-key-used:{api_key.pk}", 1, timeout=60):
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())


# Signup through the public page, and the owner's email verification (docs/decisions/0013).

EMAIL_VERIFICATION_SALT = "tenants.email-verification"
SIGNUP_SCOPE = "public"


class SignupThrottledError(ProvisioningError):
    """Too many signups from one address, or on the whole platform, this hour."""


def admit_signup_attempt(client_address: str) -> None:
    """Count a signup attempt from `client_address`; raise SignupThrottledError past the limit."""
    if not SIGNUPS_PER_IP.hit(SIGNUP_SCOPE, client_address):
        raise SignupThrottledError("too many signups from your network: try again in an hour")


def sign_up_tenant(
    *, slug: str, name: str, owner_email: str, owner_password: str, tenant_origin: str
) -> NewTenant:
    """Create a tenant, with no key, whose owner's email is not yet verified, and
    email the owner the link (on `tenant_origin`, the new host's
    scheme://host:port) that verifies it. Until then the owner signs in only
    through the signup's one-time token (accounts/login_tokens.py), keys are
    refused and no model is called for the tenant (docs/decisions/0032).
    The owner creates the first key in the dashboard, which shows its secret.

    Counted against SIGNUPS_PER_HOUR for the whole platform (SignupThrottledError).
    """
    if not SIGNUPS.hit(SIGNUP_SCOPE, "all"):
        raise SignupThrottledError("we are taking too many signups right now: try again in an hour")
    created = create_tenant(
        slug=slug, name=name, owner_email=owner_email, owner_password=owner_password, email_verified=False
    )
    send_verification_email(created.tenant, owner_email=created.owner.email, tenant_origin=tenant_origin)
    return created


def email_verification_url(tenant: Tenant, tenant_origin: str) -> str:
    # The id too: a tenant deleted and signed up again under its slug needs a new link.
    token = signing.dumps([tenant.pk, tenant.schema_name], salt=EMAIL_VERIFICATION_SALT)
    # Tenant hosts route with ROOT_URLCONF (aiaas.urls_tenant).
    path = reverse("verify-email", urlconf=settings.ROOT_URLCONF, kwargs={"token": token})
    return tenant_origin.rstrip("/") + path


def send_verification_email(tenant: Tenant, *, owner_email: str, tenant_origin: str) -> bool:
    """Email the link that verifies `tenant`; whether it was sent (a failure is logged)."""
    context = {"tenant": tenant, "verify_url": email_verification_url(tenant, tenant_origin)}
    try:
        send_mail(
            subject=f"Confirm your email to start using {tenant.name} on aiaas",
            message=render_to_string("emails/verify_email.txt", context),
            from_email=None,
            recipient_list=[owner_email],
        )
    except OSError:  # smtplib.SMTPException and socket errors
        logger.exception("Could not email the verification link of tenant %s", tenant.pk)
        return False
    return True


def resend_verification_email(tenant: Tenant, *, owner_email: str, tenant_origin: str) -> bool:
    """Send the link again, at most VERIFICATION_EMAILS_PER_HOUR times per tenant;
    whether it was sent."""
    if not VERIFICATION_EMAILS_PER_TENANT.hit(tenant_scope(tenant), "owner"):
        return False
    return send_verification_email(tenant, owner_email=owner_email, tenant_origin=tenant_origin)


def verify_tenant_email(tenant: Tenant, token: str) -> bool:
    """Mark `tenant` verified if `token` is its unexpired link; whether it is verified.

    A link names one tenant's schema and works on no other. Verifying again is
    harmless. Gateway processes drop their cached copies of the tenant's keys.
    """
    try:
        named = signing.loads(
            token, salt=EMAIL_VERIFICATION_SALT, max_age=settings.EMAIL_VERIFICATION_MAX_AGE_SECONDS
        )
    except signing.BadSignature:  # SignatureExpired included
        return False
    if named != [tenant.pk, tenant.schema_name]:
        return False
    now = timezone.now()
    if Tenant.objects.filter(pk=tenant.pk, email_verified_at__isnull=True).update(email_verified_at=now):
        tenant.email_verified_at = now
    return True


def set_cors_allowed_origins(tenant: Tenant, origins: list[str]) -> Tenant:
    """Replace the origins whose pages may call the API with `tenant`'s keys
    (stored lowercased, unique, sorted). Answers follow at once: after commit the
    gateway processes drop their cached copies of the tenant's keys, which carry
    the tenant. Preflights (any tenant's origins) follow within
    CORS_ORIGINS_CACHE_SECONDS. ValidationError on a malformed origin."""
    try:
        normalized = normalized_origins(origins)
    except ValueError as error:
        raise ValidationError({"cors_allowed_origins": str(error)}) from None
    if len(normalized) > MAX_CORS_ORIGINS:
        raise ValidationError({"cors_allowed_origins": f"At most {MAX_CORS_ORIGINS} origins."})
    tenant.cors_allowed_origins, tenant.updated_at = normalized, timezone.now()
    Tenant.objects.filter(pk=tenant.pk).update(cors_allowed_origins=normalized, updated_at=tenant.updated_at)
    known_origins.forget()
    return tenant


def set_tenants_active(tenants: QuerySet[Tenant], *, active: bool) -> int:
    """Activate or deactivate `tenants` (never the public one); how many changed.

    Once this commits, every gateway process refuses (or accepts again) their
    keys at once: the update announces them (tenants/gateway_cache.py). /api
    and the tenants' pages read the flag on every request.
    """
    changed = tenants.exclude(schema_name=settings.PUBLIC_SCHEMA_NAME).exclude(is_active=active)
    return changed.update(is_active=active, updated_at=timezone.now())


def set_outbound_policy(tenant: Tenant, *, hosts: list[str], ports: list[int]) -> Tenant:
    """Replace the hosts and ports `tenant`'s tools, URL ingestion and eval alerts may
    reach (empty lists: any public host, the default ports). The next outbound
    request reads them. ValidationError as `normalized_outbound_policy` says."""
    normalized_hosts, normalized_ports = normalized_outbound_policy(hosts, ports)
    tenant.outbound_allowed_hosts, tenant.outbound_allowed_ports = normalized_hosts, normalized_ports
    tenant.updated_at = timezone.now()
    Tenant.objects.filter(pk=tenant.pk).update(
        outbound_allowed_hosts=normalized_hosts,
        outbound_allowed_ports=normalized_ports,
        updated_at=tenant.updated_at,
    )
    return tenant


def is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def normalized_outbound_policy(hosts: list[str], ports: list[int]) -> tuple[list[str], list[int]]:
    """Hosts lowercased, unique and sorted, and ports unique and sorted; ValidationError
    on a malformed host, a port outside the platform's OUTBOUND_PERMITTED_PORTS, or
    too many of either."""
    normalized_hosts = sorted({host.strip().lower() for host in hosts})
    malformed = [host for host in normalized_hosts if not HOST_PATTERN.fullmatch(host)]
    if malformed:
        raise ValidationError({"outbound_allowed_hosts": f"{malformed[0]!r} is not a host name or address."})
    unreachable = [host for host in normalized_hosts if is_address(host) and not is_exemptable(host)]
    if unreachable:
        message = f"{unreachable[0]} is a link-local or cloud metadata address: no request may reach it."
        raise ValidationError({"outbound_allowed_hosts": message})
    if len(normalized_hosts) > MAX_OUTBOUND_HOSTS:
        raise ValidationError({"outbound_allowed_hosts": f"At most {MAX_OUTBOUND_HOSTS} hosts."})
    normalized_ports = sorted(set(ports))
    refused = [port for port in normalized_ports if not is_permitted_port(port)]
    if refused:
        platform = ", ".join(str(value) for value in settings.OUTBOUND_PERMITTED_PORTS)
        raise ValidationError(
            {"outbound_allowed_ports": f"Port {refused[0]} is not permitted here (permitted: {platform})."}
        )
    if len(normalized_ports) > MAX_OUTBOUND_PORTS:
        raise ValidationError({"outbound_allowed_ports": f"At most {MAX_OUTBOUND_PORTS} ports."})
    return normalized_hosts, normalized_ports
