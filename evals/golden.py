"""The golden suites shipped with the product (evals/golden/*.jsonl, described in
evals/golden/suites.json): original cases for FAQ answers, order status,
shipment tracking and lead qualification, each asking for a JSON answer.

Every tenant has them: the suites are read from the files, and a suite is
copied into the tenant's schema on first use (an experiment, the gate, the
nightly run, or `POST /api/v1/datasets` with its name) as a dataset of that
name whose version 1 holds the file's cases, with the suite's output format
as a `json_schema` assertion on every case. From then on the copy is the
tenant's: it edits it like any dataset (new versions), and a later release of
the file does not change it (deleting the dataset takes the next release's).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from django.db import transaction

from evals.datasets import (
    CaseData,
    DatasetInputError,
    FileFormat,
    create_dataset,
    parse_file,
    store_dataset,
    update_dataset,
)
from evals.models import Dataset

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    # The JSON Schema of the answer each case asks for.
    output_format: dict[str, Any]

    @property
    def assertions(self) -> list[dict[str, Any]]:
        return [{"type": "json_schema", "schema": self.output_format}]

    def cases(self) -> list[CaseData]:
        return parse_file((GOLDEN_DIR / f"{self.name}.jsonl").read_bytes(), FileFormat.JSONL)

    def response_format(self) -> dict[str, Any]:
        """The `response_format` asking a model for this suite's answer (structured output)."""
        schema = {"name": self.name.replace("-", "_"), "schema": self.output_format, "strict": True}
        return {"type": "json_schema", "json_schema": schema}


@cache
def suites() -> dict[str, Suite]:
    manifest = json.loads((GOLDEN_DIR / "suites.json").read_text(encoding="utf-8"))
    return {
        name: Suite(name=name, description=entry["description"], output_format=entry["output_format"])
        for name, entry in manifest.items()
    }


def suite(name: str) -> Suite:
    found = suites().get(name)
    if found is None:
        raise DatasetInputError(
            f"No golden suite `{name}`; there are {', '.join(sorted(suites()))}.",
            param="name",
            code="unknown_suite",
        )
    return found


def golden_dataset(name: str) -> tuple[Dataset, bool]:
    """The tenant's copy of the suite `name`, made now if it has none; (dataset, made now)."""
    existing = Dataset.objects.filter(name=name).first()
    if existing is not None:
        return existing, False
    shipped = suite(name)
    try:
        return store_dataset(name, shipped.description, shipped.assertions, shipped.cases()), True
    except DatasetInputError as error:
        if error.code != "name_taken":
            raise
        return Dataset.objects.get(name=name), False  # made meanwhile by another request


def create_dataset_named(
    name: str, description: str, assertions: Any, nightly: Mapping[str, Any], api_key_id: int
) -> Dataset:
    """A golden suite's copy when `name` is one, else a new empty dataset; with its nightly
    settings, all in one transaction (a refused setting makes nothing). 409 if it exists."""
    with transaction.atomic():
        if name in suites():
            if assertions is not None:
                raise DatasetInputError("A golden suite brings its own assertions.", param="assertions")
            dataset, made = golden_dataset(name)
            if not made:
                raise DatasetInputError(
                    f"A dataset named `{name}` exists.", param="name", code="name_taken", status=409
                )
        else:
            dataset = create_dataset(name, description, assertions)
        if nightly:
            update_dataset(dataset, nightly, api_key_id)
    return dataset
