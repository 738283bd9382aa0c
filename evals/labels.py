"""People's verdicts on outputs: the labelled subset against which an LLM judge's
agreement is measured (evals/agreement.py)."""

from __future__ import annotations

from evals.models import CaseResult


def label_result(result: CaseResult, human_label: bool | None) -> None:
    """Store a person's pass (True) or fail (False) for one output; None clears it."""
    result.human_label = human_label
    result.save(update_fields=["human_label"])
