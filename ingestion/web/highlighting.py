"""Search results with the query's terms marked: the text is split at the terms
first, every piece is HTML-escaped, and only then are the terms wrapped in
<mark>, so nothing of the text (nor of the query) is ever read as HTML."""

from __future__ import annotations

import re

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

TERM = re.compile(r"\w{2,}")
MAX_TERMS = 20


def terms_pattern(query: str) -> re.Pattern[str] | None:
    terms = list(dict.fromkeys(term.lower() for term in TERM.findall(query)))[:MAX_TERMS]
    if not terms:
        return None
    # Longest first, so "tenancy" is marked whole where "ten" is a term too.
    alternatives = "|".join(re.escape(term) for term in sorted(terms, key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})\w*", re.IGNORECASE)


def highlight(text: str, query: str) -> SafeString:
    pattern = terms_pattern(query)
    if pattern is None:
        return escape(text)
    pieces: list[str] = []
    end = 0
    for match in pattern.finditer(text):
        pieces.append(escape(text[end : match.start()]))
        pieces.append(f"<mark>{escape(match.group())}</mark>")
        end = match.end()
    pieces.append(escape(text[end:]))
    return mark_safe("".join(pieces))  # noqa: S308 - every piece of text is escaped above
