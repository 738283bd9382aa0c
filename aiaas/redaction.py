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
from typing import Any

REDACTED = "[redacted]"
PATTERNS = (
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]+"), rf"\g<1>\g<2>{REDACTED}"),
    (re.compile(r"\b(aiaas_[A-Za-z0-9]{12}_)[A-Za-z0-9_-]+"), rf"\g<1>{REDACTED}"),
    (re.compile(r"\b(sk-)[A-Za-z0-9_-]{8,}"), rf"\g<1>{REDACTED}"),
    (re.compile(r"\b(st_)[A-Za-z0-9_-]{16,}"), rf"\g<1>{REDACTED}"),
    (
        re.compile(r"(?i)(?<![\w.-])((?:token|access_token|api_key|secret|password)=)[^&\s\"'#\\]+"),
        rf"\g<1>{REDACTED}",
    ),
)
# Keys (of headers, cookies, query parameters, any mapping) whose values are dropped whole.
SECRET_KEYS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key", "token"}
)


def redact(text: str) -> str:
    for pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
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
