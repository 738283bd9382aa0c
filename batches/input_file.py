"""A batch's input file read as OpenAI reads it: JSONL, one request a line,
`{"custom_id", "method": "POST", "url", "body"}`, custom_id unique, url the batch's
endpoint, at most settings.BATCH_MAX_LINES lines of BATCH_MAX_LINE_BYTES each.

Every problem is reported (up to MAX_ERRORS), each as OpenAI's batch error
`{code, message, param, line}`, so one upload shows all that needs fixing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings

MAX_ERRORS = 100
MAX_CUSTOM_ID_LENGTH = 512


@dataclass(frozen=True, slots=True)
class InputLine:
    line: int  # 1-based
    custom_id: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class InputError:
    code: str
    message: str
    param: str | None = None
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "param": self.param, "line": self.line}


def read_lines(content: bytes, endpoint: str) -> tuple[list[InputLine], list[InputError]]:
    """The file's requests, or what is wrong with it (the requests are then not to be run)."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return [], [InputError("invalid_file", "The input file is not UTF-8 text.")]
    rows = [(number, row) for number, row in enumerate(text.splitlines(), start=1) if row.strip()]
    if not rows:
        return [], [InputError("empty_file", "The input file has no requests.")]
    if len(rows) > settings.BATCH_MAX_LINES:
        message = (
            f"The input file has {len(rows)} requests; a batch holds at most {settings.BATCH_MAX_LINES}."
        )
        return [], [InputError("too_many_requests", message)]
    lines: list[InputLine] = []
    errors: list[InputError] = []
    seen: set[str] = set()
    for number, row in rows:
        parsed = read_line(number, row, endpoint)
        if isinstance(parsed, InputError):
            errors.append(parsed)
        elif parsed.custom_id in seen:
            errors.append(
                InputError("duplicate_custom_id", "custom_id is not unique in the file.", "custom_id", number)
            )
        else:
            seen.add(parsed.custom_id)
            lines.append(parsed)
        if len(errors) >= MAX_ERRORS:
            break
    return lines, errors


def read_line(number: int, row: str, endpoint: str) -> InputLine | InputError:
    if len(row.encode()) > settings.BATCH_MAX_LINE_BYTES:
        message = f"The line is over the limit of {settings.BATCH_MAX_LINE_BYTES} bytes."
        return InputError("line_too_large", message, None, number)
    if "\\u0000" in row or "\x00" in row:  # PostgreSQL's JSON cannot hold NUL
        return InputError("invalid_request", "The line holds a NUL character.", None, number)
    try:
        request = json.loads(row)
    except ValueError:
        return InputError("invalid_json_line", "This line is not parseable as valid JSON.", None, number)
    if not isinstance(request, dict):
        return InputError("invalid_request", "Each line must be a JSON object.", None, number)
    custom_id = request.get("custom_id")
    if (
        not isinstance(custom_id, str)
        or not 1 <= len(custom_id) <= MAX_CUSTOM_ID_LENGTH
        or "\x00" in custom_id
    ):
        message = f"custom_id must be a string of 1 to {MAX_CUSTOM_ID_LENGTH} characters."
        return InputError("invalid_request", message, "custom_id", number)
    if request.get("method") != "POST":
        return InputError("invalid_method", "method must be `POST`.", "method", number)
    if request.get("url") != endpoint:
        message = f"url must be the batch's endpoint, `{endpoint}`."
        return InputError("mismatched_endpoint", message, "url", number)
    body = request.get("body")
    if not isinstance(body, dict):
        return InputError("invalid_request", "body must be a JSON object.", "body", number)
    if body.get("stream"):
        return InputError("invalid_request", "A batch request cannot be streamed.", "body.stream", number)
    return InputLine(number, custom_id, body)
