"""The JSON parser every /api and Django-served /v1 view reads bodies with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

import orjson
from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """orjson in place of DRF's json.load, so a body the gateway's /v1 refuses is refused
    here too, with a 400: nested past 1,024 levels (json.load raised RecursionError, a
    500), a lone surrogate (PostgreSQL cannot store it, a 500), a number past a double's
    range (json.load made it infinity). RFC 8259 bodies are UTF-8, as orjson reads them."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            return orjson.loads(stream.read())
        except orjson.JSONDecodeError as error:
            raise ParseError(f"JSON parse error - {error}") from None
