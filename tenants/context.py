"""The database connection's tenant context, typed in one place.

django-tenants adds these methods to the connection at run time; the stubs
do not know them.
"""

from __future__ import annotations

from typing import Any, cast

from django.db import connection

from aiaas import logs
from tenants.models import Tenant


def _connection() -> Any:
    return cast(Any, connection)


def activate_tenant(tenant: Tenant) -> None:
    """Point the connection at `tenant`'s schema (search_path: tenant, public); the
    lines logged from here on name it."""
    _connection().set_tenant(tenant)
    logs.bind(tenant_schema=tenant.schema_name)


def activate_public_schema() -> None:
    _connection().set_schema_to_public()


def current_schema_name() -> str:
    return str(_connection().schema_name)
