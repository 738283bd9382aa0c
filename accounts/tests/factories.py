"""Users of a tenant, created in its schema, and browsers signed in as them."""

from __future__ import annotations

from typing import Any

from django.test import Client
from django_tenants.utils import tenant_context
from factory.declarations import Sequence
from factory.django import DjangoModelFactory, Password

from accounts.models import Role, User
from testing.tenants import TEST_PASSWORD, TenantFixture


class UserFactory(DjangoModelFactory[User]):
    """Creates in the current schema: call it inside `tenant_context`."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    email = Sequence(lambda n: f"user{n}@example.com")
    role = Role.MEMBER
    password = Password(TEST_PASSWORD)


def make_user(tenant: TenantFixture, **fields: Any) -> User:
    with tenant_context(tenant.tenant):
        return UserFactory.create(**fields)


def browser_for(tenant: TenantFixture, user: User) -> Client:
    """A browser on the tenant's host, signed in as `user` through the login form."""
    client = Client(HTTP_HOST=tenant.host)
    response = client.post("/login/", {"username": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 302, response.content
    return client


def user_exists(tenant: TenantFixture, **lookup: Any) -> bool:
    with tenant_context(tenant.tenant):
        return User.objects.filter(**lookup).exists()


def user_of(tenant: TenantFixture, **lookup: Any) -> User:
    with tenant_context(tenant.tenant):
        return User.objects.get(**lookup)
