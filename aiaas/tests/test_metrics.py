"""Real traffic moves the metrics at GET /metrics by exactly what it did, read as
Prometheus reads them (prometheus_client's parser); no label carries a tenant or a path."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from django.conf import settings
from prometheus_client.samples import Sample

from aiaas.middleware import route_template
from aiaas.observability.metrics import ALL_METRICS, exposed_names
from testing.metrics import scrape, value
from testing.tenants import TenantFixture

MESSAGES = [{"role": "user", "content": "Count me."}]
CHAT = {"route": "/v1/chat/completions", "method": "POST"}
SETTLE_SECONDS = 5.0
COUNTERS = {family.name for metric in ALL_METRICS for family in metric.describe() if family.type == "counter"}


def chat(gateway: str, key: str | None, **body: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(
        f"{gateway}/chat/completions",
        json={"messages": MESSAGES, "max_tokens": 16, **body},
        headers=headers,
        timeout=30,
    )


def moved_after(platform_url: str, before: list[Sample]) -> Callable[..., float]:
    """How much a series moved since `before`. A request is counted once its last
    byte is sent, a moment after the client has it: scrape until the HTTP counts settle."""
    deadline = time.monotonic() + SETTLE_SECONDS
    after, previous = scrape(platform_url), None
    while after != previous and time.monotonic() < deadline:
        time.sleep(0.1)
        previous, after = after, scrape(platform_url)
    return lambda name, **labels: value(after, name, **labels) - value(before, name, **labels)


def test_chat_requests_move_the_counters_by_their_amounts(
    platform_url: str, gateway: str, serving_tenant: TenantFixture
) -> None:
    before = scrape(platform_url)

    answers = [chat(gateway, serving_tenant.admin_key, model="sim-small") for _ in range(3)]
    refused = chat(gateway, None, model="sim-small")

    moved = moved_after(platform_url, before)
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert refused.status_code == 401
    served = {"model": answers[0].headers["x-aiaas-model"], "tier": answers[0].headers["x-aiaas-tier"]}
    assert served == {"model": "sim-small", "tier": "1"}
    assert moved("aiaas_http_requests_total", **CHAT, status_class="2xx") == 3
    assert moved("aiaas_http_requests_total", **CHAT, status_class="4xx") == 1
    assert moved("aiaas_http_request_duration_seconds_count", **CHAT) == 4
    assert moved("aiaas_gateway_overhead_seconds_count", endpoint="/v1/chat/completions") == 4
    assert moved("aiaas_upstream_latency_seconds_count", **served) == 3
    assert moved("aiaas_limiter_decisions_total", result="admitted", reason="none") == 3
    assert moved("aiaas_gateway_unmetered_requests_total", status="401") == 1
    for kind in ("prompt", "completion"):
        billed = sum(answer.json()["usage"][f"{kind}_tokens"] for answer in answers)
        assert billed > 0
        assert moved("aiaas_tokens_total", **served, kind=kind) == billed


def test_a_stream_records_its_time_to_first_token(
    platform_url: str, gateway: str, serving_tenant: TenantFixture
) -> None:
    before = scrape(platform_url)

    with httpx.stream(
        "POST",
        f"{gateway}/chat/completions",
        json={"messages": MESSAGES, "model": "sim-medium", "stream": True},
        headers={"authorization": f"Bearer {serving_tenant.admin_key}"},
        timeout=30,
    ) as response:
        response.read()

    moved = moved_after(platform_url, before)
    assert moved("aiaas_ttft_seconds_count", model="sim-medium", tier="2") == 1
    assert moved("aiaas_http_requests_total", **CHAT, status_class="2xx") == 1
    # The overhead is the stream's at its first token, as its header says, not its whole length.
    header_seconds = float(response.headers["x-aiaas-overhead-ms"]) / 1000
    observed = moved("aiaas_gateway_overhead_seconds_sum", endpoint="/v1/chat/completions")
    assert abs(observed - header_seconds) < 0.0005


def test_the_router_counts_its_decisions_and_costs(
    platform_url: str, gateway: str, serving_tenant: TenantFixture
) -> None:
    before = scrape(platform_url)

    answer = chat(gateway, serving_tenant.admin_key, model="auto")

    moved = moved_after(platform_url, before)
    assert answer.status_code == 200
    assert moved("aiaas_router_decisions_total") == 1
    assert moved("aiaas_router_decision_latency_ms_count") == 1
    assert moved("aiaas_router_expected_cost_usd_total") > 0
    assert moved("aiaas_router_actual_cost_usd_total") > 0


def test_provider_errors_and_the_breaker_opening_are_counted(
    platform_url: str, gateway: str, serving_tenant: TenantFixture, registry: str
) -> None:
    before = scrape(platform_url)

    answers = [
        chat(gateway, serving_tenant.admin_key, model="sim-small", user="fault:unavailable") for _ in range(5)
    ]

    moved = moved_after(platform_url, before)
    after = scrape(platform_url)
    assert [answer.headers["x-aiaas-model"] for answer in answers] == ["sim-medium"] * 5
    assert moved("aiaas_provider_errors_total", provider=registry, kind="server_error") == 5
    breaker = f"{registry}:sim-small"
    assert moved("aiaas_circuit_breaker_transitions_total", provider_model=breaker, to_state="open") == 1
    assert value(after, "aiaas_circuit_breaker_state", provider_model=breaker) == 2


def test_django_routes_are_labelled_by_their_pattern_not_their_path(
    platform_url: str, serving_tenant: TenantFixture
) -> None:
    before = scrape(platform_url)
    headers = {"authorization": f"Bearer {serving_tenant.admin_key}", "host": "localhost"}

    statuses = [
        httpx.get(f"{platform_url}/api/v1/keys/{number}", headers=headers, timeout=10).status_code
        for number in (1, 2)
    ]
    unknown = httpx.get(f"{platform_url}/api/v1/no/such/thing", headers=headers, timeout=10).status_code

    moved = moved_after(platform_url, before)
    after = scrape(platform_url)
    assert (statuses, unknown) == ([404, 404], 404)
    routes = {sample.labels["route"] for sample in after if sample.name == "aiaas_http_requests_total"}
    assert not {route for route in routes if "/1" in route or "/2" in route or "no/such" in route}
    keys = "/api/v1/keys/{pk}/"
    assert moved("aiaas_http_requests_total", route=keys, method="GET", status_class="4xx") == 2
    assert moved("aiaas_http_requests_total", route="unmatched", method="GET", status_class="4xx") == 1


def test_no_label_names_or_carries_a_tenant(
    platform_url: str, gateway: str, serving_tenant: TenantFixture
) -> None:
    chat(gateway, serving_tenant.admin_key, model="sim-small")
    tenant = serving_tenant.tenant

    samples = [sample for sample in scrape(platform_url) if sample.name.startswith("aiaas_")]

    label_names = {name for sample in samples for name in sample.labels}
    label_values = {value for sample in samples for value in sample.labels.values()}
    assert not {name for name in label_names if "tenant" in name or "schema" in name or "key" in name}
    assert not label_values & {str(tenant.pk), tenant.schema_name, serving_tenant.admin_key}
    assert not [text for text in label_values if serving_tenant.admin_key[:12] in text]


def test_docs_observability_lists_every_metric_and_no_other() -> None:
    text = (settings.BASE_DIR / "docs" / "observability.md").read_text()
    section = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]

    documented = set(re.findall(r"^\| `(aiaas_[a-z_]+)` \|", section, re.MULTILINE))

    defined = {family.name for metric in ALL_METRICS for family in metric.describe()}
    assert documented == {f"{name}_total" if name in COUNTERS else name for name in defined}


def test_exposed_names_cover_every_series_a_scrape_shows(
    platform_url: str, gateway: str, serving_tenant: TenantFixture
) -> None:
    chat(gateway, serving_tenant.admin_key, model="sim-small")

    shown = {sample.name for sample in scrape(platform_url) if sample.name.startswith("aiaas_")}

    series_names = {name for name in shown if not name.endswith("_created")}
    assert {"aiaas_http_requests_total", "aiaas_gateway_overhead_seconds_bucket"} <= series_names
    assert series_names <= exposed_names()


@pytest.mark.parametrize(
    ("pattern", "template"),
    [
        ("^api/v1/keys/(?P<pk>[^/.]+)/?$", "/api/v1/keys/{pk}/"),
        ("api/v1/experiments/<str:experiment_id>/gate", "/api/v1/experiments/{experiment_id}/gate"),
        ("dashboard/agents/<slug:name>/runs/<int:pk>/", "/dashboard/agents/{name}/runs/{pk}/"),
        ("^files/(?P<name>[^/]+)\\.(?P<format>[a-z0-9]+)/?$", "/files/{name}.{format}/"),
        ("healthz", "/healthz"),
    ],
)
def test_route_labels_are_readable_templates(pattern: str, template: str) -> None:
    assert route_template(pattern) == template
