"""Human labels on results: a person's pass/fail verdict on an output, against which
an LLM judge's agreement is measured (evals/agreement.py)."""

from __future__ import annotations

from evals.models import CaseResult


def set_human_label(result: CaseResult, label: bool | None) -> CaseResult:
    """The result's label set (None clears it); only that column is written."""
    result.human_label = label
    result.save(update_fields=["human_label"])
    return result
