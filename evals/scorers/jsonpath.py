"""A small, safe subset of JSONPath: one value, reached by names and indexes.

`$`, then any of `.name`, `['name']` / `["name"]` (any key, with `\\'`, `\\"` and
`\\\\` escaped) and `[index]` (negative counts from the end). No wildcards,
filters, slices or recursive descent: an assertion names one value, and a
path is parsed once, when the spec is built, and walked in time linear in its
length.
"""

from __future__ import annotations

import re
from typing import Any

MAX_PATH_CHARACTERS = 500
NAME = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)")
INDEX = re.compile(r"\[(-?\d{1,9})\]")
QUOTED = re.compile(r"""\[(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\]""")
ESCAPE = re.compile(r"\\(.)")

Step = str | int


class InvalidPathError(ValueError):
    pass


class PathNotFoundError(LookupError):
    pass


def parse(path: str) -> tuple[Step, ...]:
    """The steps of `path`, or InvalidPathError saying where it stops making sense."""
    if len(path) > MAX_PATH_CHARACTERS:
        raise InvalidPathError(f"longer than {MAX_PATH_CHARACTERS} characters")
    if not path.startswith("$"):
        raise InvalidPathError("must start with `$`")
    steps: list[Step] = []
    position = 1
    while position < len(path):
        step, position = next_step(path, position)
        steps.append(step)
    return tuple(steps)


def next_step(path: str, position: int) -> tuple[Step, int]:
    if match := NAME.match(path, position):
        return match.group(1), match.end()
    if match := INDEX.match(path, position):
        return int(match.group(1)), match.end()
    if match := QUOTED.match(path, position):
        quoted = match.group(1) if match.group(1) is not None else match.group(2)
        return ESCAPE.sub(r"\1", quoted), match.end()
    raise InvalidPathError(f"unexpected {path[position : position + 10]!r} at character {position}")


def resolve(document: Any, steps: tuple[Step, ...]) -> Any:
    """The value at `steps` in `document`, or PathNotFoundError naming the missing step."""
    value = document
    for depth, step in enumerate(steps):
        if not has_child(value, step):
            raise PathNotFoundError(f"{render(steps[: depth + 1])} is not in the output")
        value = value[step]
    return value


def has_child(value: Any, step: Step) -> bool:
    if isinstance(step, str):
        return isinstance(value, dict) and step in value
    return isinstance(value, list) and -len(value) <= step < len(value)


def render(steps: tuple[Step, ...]) -> str:
    parts = ["$"]
    for step in steps:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", step):
            parts.append(f".{step}")
        else:
            escaped = step.replace("\\", "\\\\").replace("'", "\\'")
            parts.append(f"['{escaped}']")
    return "".join(parts)
