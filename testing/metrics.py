"""Reading the platform's metrics as Prometheus does: GET /metrics with the test
run's token (testing/settings.py), parsed by prometheus_client's own parser."""

from __future__ import annotations

import httpx
from django.conf import settings
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def metrics_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.METRICS_TOKEN}"}


def scrape(root_url: str) -> list[Sample]:
    """Every sample the server at `root_url` exports."""
    response = httpx.get(f"{root_url}/metrics", headers=metrics_headers(), timeout=10)
    assert response.status_code == 200, response.text
    return [sample for family in text_string_to_metric_families(response.text) for sample in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when none)."""
    return sum(
        sample.value
        for sample in samples
        if sample.name == name and all(sample.labels.get(key) == wanted for key, wanted in labels.items())
    )


def registry_value(name: str, **labels: str) -> float:
    """`name`'s value in this process's registry (a server thread's counts included)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
