"""`manage.py check --deploy`: settings under which the registry would refuse everything or sign nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from registry.policy import signatures_required
from registry.signing import load_private_key, trusted_keys


@register(Tags.security, deploy=True)
def check_registry_keys(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    if signatures_required() and not trusted_keys():
        messages.append(
            Warning(
                "Only signed entries run here, but no key is trusted: no tool, prompt or agent will run.",
                hint="Set REGISTRY_PUBLIC_KEYS (docs/registry.md).",
                id="registry.W001",
            )
        )
    if settings.REGISTRY_SIGNING_KEY_FILE:
        try:
            load_private_key(Path(settings.REGISTRY_SIGNING_KEY_FILE))
        except (OSError, ValueError) as error:
            messages.append(Error(f"REGISTRY_SIGNING_KEY_FILE cannot be used: {error}", id="registry.E001"))
    return messages
