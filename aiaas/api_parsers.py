"""The JSON parser of every DRF view: DRF's, with one more refusal.

The standard library's decoder raises RecursionError, not ValueError, on a body
nested deeper than the interpreter's recursion limit (`[[[[...` in 200 KB, well
inside the body limit), and DRF's parser lets it through as a 500. Here it is
a 400 `parse_error` like any other malformed body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
