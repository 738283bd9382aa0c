"""`manage.py check` (and every server's start): outbound port settings that the guard
could not read, or defaults the platform's maximum refuses (ADR 0042)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from aiaas.outbound import port_ranges


@register(Tags.security)
def check_outbound_ports(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        permitted = port_ranges(settings.OUTBOUND_PERMITTED_PORTS)
        defaults = port_ranges(settings.OUTBOUND_DEFAULT_PORTS)
    except ValueError as error:
        message = f"OUTBOUND_PERMITTED_PORTS or OUTBOUND_DEFAULT_PORTS: {error}"
        hint = 'Write ports and ranges separated by commas: "80,443,1024-65535".'
        return [Error(message, hint=hint, id="tenants.E001")]
    outside = [port for ports in defaults for port in ports if not any(port in bound for bound in permitted)]
    if outside:
        return [
            Warning(
                f"OUTBOUND_DEFAULT_PORTS holds port {outside[0]}, outside OUTBOUND_PERMITTED_PORTS: "
                "tenants without ports of their own cannot reach it.",
                id="tenants.W001",
            )
        ]
    return []
