"""Answers to the golden suites' cases that a correct model would give: each case's
`expected` with the output format's other required strings filled in (with the
words its `contains` assertions ask for)."""

from __future__ import annotations

import json

from evals.datasets import CaseData
from evals.golden import Suite


def right_answer(suite: Suite, case: CaseData) -> str:
    words = " ".join(spec["value"] for spec in case.assertions if spec["type"] == "contains") or "Done."
    answer = dict(case.expected)
    for name in suite.output_format["required"]:
        answer.setdefault(name, words)
    return json.dumps(answer)
