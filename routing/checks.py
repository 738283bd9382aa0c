"""`manage.py check --deploy`: the simulated provider has no place in production
(aiaas/checks.py has our other deploy checks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.checks import CheckMessage, Tags, Warning, register
from django.db import DatabaseError

from routing.models import Provider


@register(Tags.security, deploy=True)
def check_simulated_provider(app_configs: Sequence[Any] | None, **kwargs: Any) -> list[CheckMessage]:
    try:
        simulated = Provider.objects.filter(is_simulated=True, is_enabled=True)
        slugs = list(simulated.values_list("slug", flat=True))
    except DatabaseError as error:
        return [
            Warning(
                f"Could not look for the simulated provider: {str(error).splitlines()[0]}",
                hint="Run the check where the database is reachable.",
                id="aiaas.W008",
            )
        ]
    if not slugs:
        return []
    return [
        Warning(
            f"The simulated provider is registered and enabled ({', '.join(slugs)}): "
            "requests routed to it get made-up answers.",
            hint="Disable or delete it in the admin (Routing > Providers).",
            id="aiaas.W009",
        )
    ]
