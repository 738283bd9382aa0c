"""OpenAI's search filters (comparison and compound) as our metadata filters
(ingestion.search: `{key: value}` equal, `{key: {"$in": [...]}}` one of).

What fits: `eq` and `in`; an `and` of those on distinct keys; an `or` of those on
one key (a set of allowed values). Anything else (`ne`, `gt`, `nin`, an `or`
across keys, nesting beyond that) is refused with a 400 naming the filter,
rather than searched without it.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError

COMPARISONS = frozenset({"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"})
SUPPORTED = "only `eq` and `in` comparisons, an `and` of them on distinct keys, or an `or` of them on one key"
Scalar = str | int | float | bool


def refused(param: str, message: str) -> ValidationError:
    return ValidationError({param: [message]}, code="unsupported_filter")


def allowed_values(node: Any, param: str) -> tuple[str, list[Scalar] | Scalar]:
    """(key, value) of an `eq`, or (key, [values]) of an `in`."""
    if (
        not isinstance(node, dict)
        or node.get("type") not in COMPARISONS
        or set(node) != {"type", "key", "value"}
    ):
        raise refused(param, f"must be a comparison filter {{type, key, value}}; {SUPPORTED}")
    key, value = node["key"], node["value"]
    if not isinstance(key, str) or not key:
        raise refused(f"{param}.key", "must be a non-empty string")
    if node["type"] == "eq" and isinstance(value, Scalar):
        return key, value
    if (
        node["type"] == "in"
        and isinstance(value, list)
        and value
        and all(isinstance(v, Scalar) for v in value)
    ):
        return key, list(value)
    if node["type"] in {"eq", "in"}:
        raise refused(
            f"{param}.value", "`eq` takes a string, number or boolean; `in` a non-empty list of them"
        )
    raise refused(f"{param}.type", f"`{node['type']}` is not supported: {SUPPORTED}")


def values_list(value: list[Scalar] | Scalar) -> list[Scalar]:
    return value if isinstance(value, list) else [value]


def condition(value: list[Scalar] | Scalar) -> object:
    return {"$in": value} if isinstance(value, list) else value


def metadata_filters(filters: Any, param: str = "filters") -> dict[str, object]:
    """Our filters for an OpenAI `filters` object, or a 400 naming what does not fit."""
    if not isinstance(filters, dict):
        raise refused(param, "must be a comparison or compound filter object")
    if filters.get("type") not in {"and", "or"}:
        key, value = allowed_values(filters, param)
        return {key: condition(value)}
    children = filters.get("filters")
    if set(filters) != {"type", "filters"} or not isinstance(children, list) or not children:
        raise refused(param, "a compound filter is {type: and|or, filters: [...]} with at least one filter")
    pairs = [allowed_values(child, f"{param}.filters[{index}]") for index, child in enumerate(children)]
    keys = [key for key, _ in pairs]
    if filters["type"] == "and":
        if len(set(keys)) != len(keys):
            raise refused(param, f"an `and` names each key once: {SUPPORTED}")
        return {key: condition(value) for key, value in pairs}
    if len(set(keys)) != 1:
        raise refused(param, f"an `or` across different keys is not supported: {SUPPORTED}")
    merged = list(dict.fromkeys(v for _, value in pairs for v in values_list(value)))
    return {keys[0]: {"$in": merged}}
