"""Prompts: a tenant's versioned templates with variables (kind "prompt", in its schema).

A version's manifest is `{"name", "template", "variables"}`; the variables are
the names the template reads, found by parsing it, so the form and the API
can ask for exactly those. Templates run in the agents' bounded sandbox
(agents/templating.py). A new version is a draft, signed as it is saved when
the platform has a signing key (REGISTRY_SIGNING_KEY_FILE).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateError, meta
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from agents import templating
from registry import services
from registry.models import Entry, Kind
from registry.signing import platform_signature

MAX_TEMPLATE_CHARACTERS = 20_000
MANIFEST_VALIDATOR = Draft202012Validator(
    {
        "type": "object",
        "required": ["name", "template", "variables"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string"},
            "template": {"type": "string", "maxLength": MAX_TEMPLATE_CHARACTERS},
            "variables": {"type": "array", "items": {"type": "string"}},
        },
    }
)


class PromptError(ValueError):
    """A template that does not compile, or a render that failed, and why."""


def check_manifest(manifest: dict[str, Any]) -> None:
    error = best_match(MANIFEST_VALIDATOR.iter_errors(manifest))
    if error is not None:
        raise PromptError(f"malformed prompt at {error.json_path}: {error.message}")
    if manifest["variables"] != variables_of(manifest["template"]):
        raise PromptError("the variables are not the ones the template reads")


def variables_of(template: str) -> list[str]:
    """The top-level names the template reads, sorted; PromptError if it does not compile."""
    try:
        templating.check_template(template)
        return sorted(meta.find_undeclared_variables(templating.ENVIRONMENT.parse(template)))
    except TemplateError as error:
        raise PromptError(f"Invalid template: {error.message}") from None


def create_version(name: str, template: str, *, actor: str) -> Entry:
    """The next version of prompt `name`, a draft (services.RegistryError if refused)."""
    manifest = {"name": name, "template": template, "variables": variables_of(template)}
    return services.create_entry(Kind.PROMPT, manifest, actor=actor, signature=platform_signature(manifest))


def render(entry: Entry, variables: dict[str, Any]) -> str:
    """The prompt's text with `variables`; PromptError naming a missing variable or a limit."""
    try:
        return str(templating.render(entry.manifest["template"], variables))
    except TemplateError as error:
        raise PromptError(f"The prompt cannot be rendered: {error.message}") from None


@dataclass(frozen=True)
class DiffRow:
    """One line of a side-by-side diff: `tag` is equal, replace, delete or insert."""

    tag: str
    before_number: int | None
    before: str
    after_number: int | None
    after: str


def side_by_side(before: Entry, after: Entry) -> list[DiffRow]:
    """The two templates aligned line by line (difflib's opcodes)."""
    left = before.manifest["template"].splitlines()
    right = after.manifest["template"].splitlines()
    rows = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, left, right, autojunk=False).get_opcodes():
        for offset in range(max(i2 - i1, j2 - j1)):
            i, j = i1 + offset, j1 + offset
            rows.append(
                DiffRow(
                    tag,
                    i + 1 if i < i2 else None,
                    left[i] if i < i2 else "",
                    j + 1 if j < j2 else None,
                    right[j] if j < j2 else "",
                )
            )
    return rows


def unified_diff(before: Entry, after: Entry) -> list[str]:
    """The lines of a unified diff from one version's template to another's."""
    return list(
        difflib.unified_diff(
            before.manifest["template"].splitlines(),
            after.manifest["template"].splitlines(),
            fromfile=f"{before.name} v{before.version}",
            tofile=f"{after.name} v{after.version}",
            lineterm="",
        )
    )
