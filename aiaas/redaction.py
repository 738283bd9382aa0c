"""Secrets taken out of text before it leaves the process (log lines, Sentry events).

What is redacted: our API keys (`aiaas_<prefix>_<secret>`: the prefix stays, it
tells keys apart), `sk-`-style provider keys, stream tokens (`st_...`), the
credentials of an Authorization value (`Bearer ...`, `Basic ...`) and the value
of a credential-like query parameter (`?token=...`). Anything else in the text
is kept: prompts must stay out of logs by never being logged. No pattern takes
a quote or a backslash, so redacting a JSON line leaves it JSON.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

REDACTED = "[redacted]"


@dataclass(frozen=True, slots=True)
class Rule:
    """`pattern` can match only where one of `triggers` (lower case) occurs; a line
    without them costs a substring search, not a regex scan. A pattern that starts
    with a literal is searched fast; `replace` checks that the match starts a
    word."""

    triggers: tuple[str, ...]
    pattern: re.Pattern[str]  # group 1 is kept

    def replace(self, match: re.Match[str]) -> str:
        start = match.start()
        if start and (match.string[start - 1].isalnum() or match.string[start - 1] == "_"):
            return match.group(0)
        return match.group(1) + REDACTED


RULES = (
    Rule(("bearer", "basic"), re.compile(r"(?i)\b((?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]+")),
    Rule(("aiaas_",), re.compile(r"(aiaas_[A-Za-z0-9]{12}_)[A-Za-z0-9_-]+")),
    Rule(("sk-",), re.compile(r"(sk-)[A-Za-z0-9_-]{8,}")),
    Rule(("st_",), re.compile(r"(st_)[A-Za-z0-9_-]{16,}")),
    Rule(
        ("token=", "api_key=", "secret=", "password="),
        re.compile(r"(?i)(?<![\w.-])((?:token|access_token|api_key|secret|password)=)[^&\s\"'#\\]+"),
    ),
)
# Keys (of headers, cookies, query parameters, any mapping) whose values are dropped whole.
SECRET_KEYS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key", "token"}
)


def redact(text: str) -> str:
    lowered = text.lower()
    for rule in RULES:
        if any(trigger in lowered for trigger in rule.triggers):
            text = rule.pattern.sub(rule.replace, text)
    return text


def scrub(value: Any) -> Any:
    """`value` (JSON-like: dicts, lists, strings) with every string redacted and the
    values under secret keys replaced."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: REDACTED if is_secret_key(key) else scrub(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(item) for item in value]
    return value


def is_secret_key(key: Any) -> bool:
    return isinstance(key, str) and key.lower() in SECRET_KEYS
