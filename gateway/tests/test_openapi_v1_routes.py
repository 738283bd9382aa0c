"""Every /v1 route is described in gateway/openapi_v1.yaml, and every description
is of a route: the document is written by hand (docs/decisions/0005), so a new
route must not be able to ship without it.

The routes are read from what serves them: the gateway's Starlette routes (its
catch-all 404/405 route aside) and the URL patterns of aiaas/urls_api.py that
aiaas/asgi.py sends to Django. Paths are compared with their parameters matched
by position, not by name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
from django.urls import URLPattern, URLResolver, get_resolver
from starlette.routing import Route

from aiaas.asgi import served_by_django
from gateway.openapi import HTTP_METHODS, v1_description
from gateway.transports.http import create_app
from testing.tenants import TenantFixture

CATCH_ALL = "/v1/{path:path}"
# `{model_id:path}` (Starlette), `<str:batch_id>` (Django), `{batch_id}` (OpenAPI).
PARAMETER = re.compile(r"\{[^}]*\}|<[^>]*>")

Operation = tuple[str, str]


def shape(path: str) -> str:
    return PARAMETER.sub("{}", path)


def gateway_operations() -> Iterator[Operation]:
    for route in create_app().routes:
        assert isinstance(route, Route), route
        if route.path == CATCH_ALL:
            continue
        for method in route.methods or ():
            if method.lower() in HTTP_METHODS:  # Starlette adds HEAD to every GET
                yield method.lower(), shape(route.path)


Patterns = list[URLPattern | URLResolver]


def url_patterns(patterns: Patterns, prefix: str = "/") -> Iterator[tuple[str, URLPattern]]:
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from url_patterns(entry.url_patterns, route)
        else:
            yield route, entry


def django_operations() -> Iterator[Operation]:
    for route, pattern in url_patterns(get_resolver("aiaas.urls_api").url_patterns):
        if not served_by_django(route):
            continue
        # A DRF viewset's method -> action; it adds HEAD for GET once it has served a request.
        for method in getattr(pattern.callback, "actions", {}):
            if method in HTTP_METHODS:
                yield method, shape(route)


def described_operations() -> set[Operation]:
    return {
        (method, shape(path))
        for path, item in v1_description()["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def served_operations() -> set[Operation]:
    return {*gateway_operations(), *django_operations()}


def test_it_finds_the_routes_of_both_servers() -> None:
    served = served_operations()

    assert ("post", "/v1/chat/completions") in served
    assert ("post", "/v1/messages") in served
    assert ("get", "/v1/models/{}") in served
    assert ("post", "/v1/batches/{}/cancel") in served
    assert ("delete", "/v1/vector_stores/{}/files/{}") in served


def test_every_v1_route_is_described() -> None:
    missing = served_operations() - described_operations()

    assert not missing, f"/v1 routes not in gateway/openapi_v1.yaml: {sorted(missing)}"


def test_every_description_is_of_a_v1_route() -> None:
    unserved = described_operations() - served_operations()

    assert not unserved, f"gateway/openapi_v1.yaml describes routes nobody serves: {sorted(unserved)}"


def documented_responses(method: str, path: str) -> dict[str, Any]:
    for described, item in v1_description()["paths"].items():
        if shape(described) == path:
            responses: dict[str, Any] = item[method]["responses"]
            return responses
    raise AssertionError(f"{method} {path} is not described")


def test_every_django_served_route_documents_its_throttle() -> None:
    """tenants/api/throttling.py answers 429 (rate reached) and 503 (limiter down) on each."""
    undocumented = sorted(
        (method, path)
        for method, path in django_operations()
        if {"429", "503"} - set(documented_responses(method, path))
    )

    assert not undocumented, f"Django-served /v1 routes without the throttle's 429/503: {undocumented}"


IDEMPOTENCY_KEY = {"$ref": "#/components/parameters/IdempotencyKey"}


def test_the_routes_that_read_an_idempotency_key_are_the_described_ones(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    """A malformed Idempotency-Key is refused by exactly the routes whose description
    has the header (and its 409/422): the others ignore it."""
    headers = {"authorization": f"Bearer {serving_tenant.admin_key}", "idempotency-key": "x" * 256}
    posts = sorted(path for method, path in gateway_operations() if method == "post" and "{}" not in path)
    reading, described = set(), set()
    with httpx.Client(base_url=gateway.removesuffix("/v1"), timeout=10) as client:
        for path in posts:
            response = client.post(path, json={}, headers=headers)
            assert response.status_code < 500, (path, response.text)
            if response.status_code == 400 and "Idempotency-Key" in response.text:
                reading.add(path)
            item = next(item for p, item in v1_description()["paths"].items() if shape(p) == path)
            if IDEMPOTENCY_KEY in item["post"].get("parameters", []):
                described.add(path)
                assert {"409", "422"} <= set(item["post"]["responses"]), path

    assert "/v1/chat/completions" in reading
    assert reading == described
