"""What a valid manifest of each kind is. Each kind's check lives with the code
that runs it, named here by path so the registry imports no domain app at load."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.utils.module_loading import import_string

from registry.models import Kind

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
CHECKS = {
    Kind.TOOL: "agents.tools.manifests.check_manifest",
    Kind.PROMPT: "registry.prompts.check_manifest",
    Kind.MODEL: "registry.catalog.check_manifest",
    Kind.AGENT: "agents.spec.check_agent_manifest",
}


class ManifestInvalidError(ValueError):
    """A manifest that is not a valid one of its kind."""


def check(kind: str, manifest: Any) -> str:
    """The manifest's name, or ManifestInvalidError saying what is wrong."""
    if kind not in Kind.values:
        raise ManifestInvalidError(f"unknown kind {kind!r} (one of {', '.join(Kind.values)})")
    if not isinstance(manifest, dict) or not NAME.fullmatch(str(manifest.get("name", ""))):
        raise ManifestInvalidError("a manifest is an object with a `name` (letters, digits, _.:-)")
    checker: Callable[[dict[str, Any]], None] = import_string(CHECKS[Kind(kind)])
    try:
        checker(manifest)
    except ValueError as error:
        raise ManifestInvalidError(str(error)) from None
    return str(manifest["name"])
