"""Datasets and their cases, created in a tenant's schema through the services."""

from __future__ import annotations

import itertools
from typing import Any

from django.utils import timezone
from django_tenants.utils import tenant_context

from evals import datasets
from evals.datasets import CaseData
from evals.models import Dataset, DatasetVersion
from testing.tenants import TenantFixture

_names = itertools.count(1)


def case_data(n: int, **fields: Any) -> CaseData:
    values: dict[str, Any] = {
        "key": f"case-{n}",
        "input": {"messages": [{"role": "user", "content": f"Question {n}?"}]},
        "expected": f"Answer {n}.",
        "tags": ["smoke"],
        "assertions": [{"type": "contains", "value": f"Answer {n}"}],
        **fields,
    }
    return CaseData(**values)


def make_dataset(tenant: TenantFixture, cases: int = 2, name: str | None = None) -> Dataset:
    with tenant_context(tenant.tenant):
        return datasets.create_dataset(
            name or f"dataset-{next(_names)}",
            "A test dataset.",
            cases=[case_data(n) for n in range(1, cases + 1)],
        )


def lock_latest(tenant: TenantFixture, dataset: Dataset) -> DatasetVersion:
    """As an experiment's start does (evals/services.py)."""
    with tenant_context(tenant.tenant):
        version = datasets.latest_version(dataset)
        version.locked_at = timezone.now()
        version.save(update_fields=["locked_at"])
        return version
