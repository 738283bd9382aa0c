"""Tenants, their domains and API keys, made through the real services."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from factory.base import Factory
from factory.declarations import LazyAttribute, LazyFunction, Sequence
from factory.django import DjangoModelFactory

from tenants.models import ApiKeyScope, Domain
from tenants.services import IssuedApiKey, create_api_key, provision_tenant
from testing.tenants import TEST_PASSWORD, TenantFixture


def provision_test_tenant(**fields: Any) -> TenantFixture:
    return TenantFixture(provision_tenant(**fields))


class TenantFactory(Factory[TenantFixture]):
    """A tenant provisioned as signup does it (a schema cloned from the template, its
    domain, an owner whose password is TEST_PASSWORD, an admin key), with its secrets.
    A schema each: tests that only need a tenant take the session's `tenant`."""

    class Meta:
        model = provision_test_tenant

    slug = Sequence(lambda n: f"factory-{n}")
    name = LazyAttribute(lambda tenant: f"{tenant.slug.title()} Corp")
    owner_email = LazyAttribute(lambda tenant: f"owner@{tenant.slug}.example")
    owner_password = TEST_PASSWORD
    # Generous limits: tests of limits set their own on keys of their own.
    plan_slug = "enterprise"


class DomainFactory(DjangoModelFactory[Domain]):
    """A further, non-primary host of a tenant (provisioning made the primary one)."""

    class Meta:
        model = Domain

    domain = Sequence(lambda n: f"alias-{n}.{settings.BASE_DOMAIN}")
    is_primary = False


class ApiKeyFactory(Factory[IssuedApiKey]):
    """A key issued by `create_api_key`, with its secret: pass `tenant` (a Tenant)."""

    class Meta:
        model = create_api_key

    name = Sequence(lambda n: f"key-{n}")
    scopes = LazyFunction(lambda: [ApiKeyScope.INFERENCE])
