"""The authorization matrix every API operation must pass.

Each operation of the API URLConf is declared once as an `Operation` (see
aiaas/tests/test_authorization_matrix.py); the matrix then proves, for
{own id, other tenant's id, nonexistent id} x {valid, revoked, expired,
missing, malformed key}, that:

- a key that is missing, malformed, revoked or expired gets 401;
- another tenant's id answers exactly like a nonexistent id (404, same body);
- another tenant's key changes nothing of this tenant's object;
- the tenant's own valid key succeeds with the declared status.

An operation in the URLConf without a row fails the suite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db.models import Model
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from django_tenants.utils import tenant_context
from rest_framework.test import APIClient

from tenants.models import ApiKeyScope
from tenants.services import create_api_key, revoke_api_key
from testing.tenants import TenantFixture

NONEXISTENT_ID = "987654321"
# HEAD answers as GET does; OPTIONS describes the route and reads no data.
IMPLIED_METHODS = frozenset({"head", "options"})
# Routes that are public by design: the OpenAPI document, and the JSON 404 of any other URL.
PUBLIC_URL_NAMES = frozenset({"openapi-schema", "swagger-ui", "unknown-url"})


@dataclass(frozen=True)
class Operation:
    url_name: str
    method: str
    expected_status: int
    # A body, or a function making one for each call (an upload's file is read once).
    body: dict[str, Any] | Callable[[], dict[str, Any]] | None = None
    # Makes an object of the given tenant and returns it; for detail routes.
    make_object: Callable[[TenantFixture], Model] | None = None
    url_kwarg: str = "pk"
    extra_kwargs: dict[str, str] = field(default_factory=dict)
    format: str = "json"

    @property
    def id(self) -> str:
        return f"{self.method.upper()} {self.url_name}"

    def url(self, object_id: str | None = None) -> str:
        kwargs = dict(self.extra_kwargs)
        if self.make_object is not None:
            kwargs[self.url_kwarg] = object_id or NONEXISTENT_ID
        return reverse(self.url_name, urlconf="aiaas.urls_api", kwargs=kwargs)

    def call(self, client: APIClient, object_id: str | None = None) -> Any:
        body = self.body() if callable(self.body) else self.body
        return getattr(client, self.method)(self.url(object_id), data=body, format=self.format)


def api_operations() -> Iterator[tuple[str, str]]:
    """Every (url name, HTTP method) the API URLConf serves."""

    def walk(patterns: list[URLPattern | URLResolver]) -> Iterator[URLPattern]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns)
            else:
                yield pattern

    for pattern in walk(get_resolver("aiaas.urls_api").url_patterns):
        if pattern.name in PUBLIC_URL_NAMES:
            continue
        callback = pattern.callback
        actions = getattr(callback, "actions", None)
        view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        if actions is not None:
            methods = set(actions)
        elif view_class is not None:
            methods = {m for m in view_class.http_method_names if hasattr(view_class, m)}
        else:
            methods = {"get", "post", "put", "patch", "delete"}
        for method in sorted(methods - IMPLIED_METHODS):
            yield str(pattern.name), method


def row_of(tenant: TenantFixture, obj: Model) -> dict[str, Any] | None:
    with tenant_context(tenant.tenant):
        return type(obj)._default_manager.filter(pk=obj.pk).values().first()


def unusable_keys(tenant: TenantFixture) -> dict[str, str]:
    """Keys of `tenant` that must all be refused, by kind."""
    revoked = create_api_key(tenant.tenant, name="revoked", scopes=[ApiKeyScope.ADMIN])
    revoke_api_key(revoked.api_key)
    expired = create_api_key(tenant.tenant, name="expired", scopes=[ApiKeyScope.ADMIN])
    expired.api_key.expires_at = timezone.now() - timedelta(seconds=1)
    expired.api_key.save(update_fields=["expires_at"])
    wrong_secret = tenant.admin_key[:-4] + ("AAAA" if not tenant.admin_key.endswith("AAAA") else "BBBB")
    return {
        "revoked": revoked.secret,
        "expired": expired.secret,
        "wrong secret": wrong_secret,
        "malformed": "not-a-key",
        "empty bearer": "",
    }


def assert_refuses_unusable_keys(operation: Operation, tenant: TenantFixture) -> None:
    object_id = str(operation.make_object(tenant).pk) if operation.make_object else None
    missing = operation.call(APIClient(), object_id)
    assert missing.status_code == 401, (operation.id, missing.content)
    assert missing.json()["error"]["code"] == "missing_api_key"
    for kind, key in unusable_keys(tenant).items():
        response = operation.call(tenant.api_client(key), object_id)
        assert response.status_code == 401, (operation.id, kind, response.content)
        assert response.json()["error"]["code"] == "invalid_api_key", (operation.id, kind)


def assert_closed_to_outsider(operation: Operation, tenant: TenantFixture, outsider: TenantFixture) -> None:
    """Another tenant's key gets the nonexistent-id answer and changes nothing."""
    assert operation.make_object is not None
    obj = operation.make_object(tenant)
    before = row_of(tenant, obj)
    nonexistent = operation.call(outsider.api_client(), NONEXISTENT_ID)
    foreign = operation.call(outsider.api_client(), str(obj.pk))
    assert foreign.status_code == 404, (operation.id, foreign.content)
    assert (foreign.status_code, foreign.content) == (nonexistent.status_code, nonexistent.content)
    assert row_of(tenant, obj) == before, f"{operation.id}: another tenant's key changed the object"


def assert_serves_owner(operation: Operation, tenant: TenantFixture) -> None:
    object_id = str(operation.make_object(tenant).pk) if operation.make_object else None
    response = operation.call(tenant.api_client(), object_id)
    assert response.status_code == operation.expected_status, (operation.id, response.content)
