"""Reading a scorer spec's arguments: each is read once with its type checked, and
whatever is left unread is an unknown argument. Every error names the spec (its
index and type) and the argument, so a tenant can fix the one line that is wrong."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from evals.scorers import ScorerSpecError

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
MAX_WEIGHT = 1000.0
# Strings a spec may hold (a rubric, a value): generous, but a spec stays a spec.
MAX_TEXT_CHARACTERS = 20_000


class Arguments:
    """One spec's arguments, beside the common `type`, `name` and `weight`."""

    def __init__(self, spec: dict[str, Any], index: int) -> None:
        self.spec = spec
        self.index = index
        self.type = str(spec.get("type", ""))
        self.unread = set(spec) - {"type", "name", "weight"}

    def error(self, message: str) -> ScorerSpecError:
        return ScorerSpecError(f"scorer {self.index} ({self.type}): {message}")

    def has(self, key: str) -> bool:
        return key in self.spec

    def raw(self, key: str) -> Any:
        self.unread.discard(key)
        return self.spec.get(key)

    def name(self) -> str:
        name = self.spec.get("name", self.type)
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise self.error(
                "`name` must be 1 to 64 letters, digits or `_.:-`, starting with a letter or digit"
            )
        return name

    def weight(self) -> float:
        weight = self.spec.get("weight", 1.0)
        if not is_number(weight) or not 0 < weight <= MAX_WEIGHT:
            raise self.error(f"`weight` must be a number above 0 and at most {MAX_WEIGHT:g}")
        return float(weight)

    def string(self, key: str, *, default: str | None = None) -> str:
        value = self.raw(key)
        if value is None and default is not None:
            return default
        if not isinstance(value, str) or not value:
            raise self.error(f"`{key}` must be a non-empty string")
        if len(value) > MAX_TEXT_CHARACTERS:
            raise self.error(f"`{key}` is longer than {MAX_TEXT_CHARACTERS} characters")
        return value

    def boolean(self, key: str, *, default: bool = False) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(f"`{key}` must be true or false")
        return value

    def number(self, key: str, *, default: float | None = None, minimum: float = 0.0) -> float:
        value = self.raw(key)
        if value is None and default is not None:
            return default
        if not is_number(value) or value < minimum:
            raise self.error(f"`{key}` must be a number of at least {minimum:g}")
        return float(value)

    def optional_number(self, key: str) -> float | None:
        value = self.raw(key)
        if value is not None and not is_number(value):
            raise self.error(f"`{key}` must be a number")
        return None if value is None else float(value)

    def decimal(self, key: str) -> Decimal:
        value = self.raw(key)
        try:
            amount = Decimal(str(value)) if is_number(value) or isinstance(value, str) else None
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite() or amount < 0:
            raise self.error(f"`{key}` must be a non-negative amount (a number or a decimal string)")
        return amount

    def choice(self, key: str, options: Sequence[str], *, default: str) -> str:
        value = self.raw(key)
        if value is None:
            return default
        if value not in options:
            raise self.error(f"`{key}` must be one of {', '.join(options)}")
        return str(value)

    def strings(self, key: str) -> tuple[str, ...] | None:
        """A non-empty list of non-empty strings, or None when absent."""
        value = self.raw(key)
        if value is None:
            return None
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(item, str) and item for item in value)
        ):
            raise self.error(f"`{key}` must be a non-empty list of non-empty strings")
        return tuple(value)

    def json_object(self, key: str) -> dict[str, Any]:
        value = self.raw(key)
        if not isinstance(value, dict):
            raise self.error(f"`{key}` must be an object")
        return value

    def finish(self) -> None:
        """Refuse the arguments nobody read: a misspelt one would otherwise be ignored."""
        if self.unread:
            raise self.error(f"unknown argument {', '.join(f'`{key}`' for key in sorted(self.unread))}")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
