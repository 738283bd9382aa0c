"""docs/anthropic.md's table of request fields is what the Messages mapping does: every
field the mapping accepts has a row, a row that says a field is served is accepted
(passed on as written, or dropped, when it says so), and a refused one is a 400."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from gateway.anthropic_mapping import FIELDS, to_chat_body
from gateway.errors import GatewayError

TABLE = Path(__file__).resolve().parents[2] / "docs" / "anthropic.md"
BASE: dict[str, Any] = {
    "model": "auto",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "Hi"}],
}
TOOL = {"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}
# A value of each top-level field that its row's status applies to.
SAMPLES: dict[str, Any] = {
    "model": "sim-small",
    "max_tokens": 8,
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
    "system": "Be brief.",
    "metadata": {"user_id": "u-1"},
    "stop_sequences": ["END"],
    "stream": True,
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 5,
    "service_tier": "auto",
    "tools": [TOOL],
    "tool_choice": {"type": "any"},
    "thinking": {"type": "enabled", "budget_tokens": 1024},
}

# What a field's sample needs beside it.
NEEDS: dict[str, dict[str, Any]] = {"tool_choice": {"tools": [TOOL]}}


def rows() -> dict[str, str]:
    """Top-level field -> status, from the "Request fields" table."""
    section = TABLE.read_text().split("## Request fields", 1)[1].split("\n## ", 1)[0]
    statuses: dict[str, str] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        for name in re.findall(r"`([a-z_]+)(?:[.\[][^`]*)?`", cells[0]):
            statuses.setdefault(name, cells[1].split()[0])
    return statuses


def test_every_field_the_mapping_accepts_has_a_row_and_a_sample() -> None:
    assert set(rows()) >= FIELDS
    assert set(SAMPLES) == FIELDS


# Rows of content blocks and nested fields are checked by test_anthropic_mapping.py.
@pytest.mark.parametrize(("field", "status"), sorted((f, s) for f, s in rows().items() if f in FIELDS))
def test_a_row_says_what_the_mapping_does(field: str, status: str) -> None:
    body = {**BASE, **NEEDS.get(field, {}), field: SAMPLES[field]}

    if status == "refused":
        with pytest.raises(GatewayError) as refused:
            to_chat_body(body)
        assert refused.value.status == 400
        return
    chat = to_chat_body(body)
    assert status in {"supported", "mapped", "passed", "dropped"}, status
    if status == "passed":
        assert chat[field] == SAMPLES[field]
    if status == "dropped":
        assert field not in chat
