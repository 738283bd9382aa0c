"""What a case's input and output look like in a table cell: the words a person
reads (the last user message, an answer's text), or indented JSON for anything else."""

from __future__ import annotations

import json
from typing import Any

from django import template

register = template.Library()
PREVIEW_CHARACTERS = 2000


@register.filter
def as_text(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, indent=1, ensure_ascii=False, default=str)
    return text if len(text) <= PREVIEW_CHARACTERS else f"{text[:PREVIEW_CHARACTERS]}…"


@register.filter
def input_text(case_input: Any) -> str:
    """A chat case shows its last user message; prompt variables and agent inputs show as JSON."""
    messages = case_input.get("messages") if isinstance(case_input, dict) else None
    if isinstance(messages, list):
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        if users and isinstance(users[-1].get("content"), str):
            return as_text(users[-1]["content"])
    return as_text(case_input)


@register.filter
def target_label(target: Any) -> str:
    """What an experiment sends: its model, prompt or agent (evals/targets.py)."""
    if not isinstance(target, dict):
        return ""
    for field in ("agent", "prompt", "model"):
        if field in target:
            return str(target[field])
    return ""
