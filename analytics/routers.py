"""Analytics reads go to the `analytics` database alias; nothing is written or migrated there.

The alias is `ANALYTICS_DATABASE_URL` (a streaming replica) when set, else the
primary's settings opened with `default_transaction_read_only`, so a write
through it fails on either (aiaas/settings.py). Writes of the analytics models
(the rollup worker) keep going to the default alias.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model

ANALYTICS_DATABASE = "analytics"


class AnalyticsReadRouter:
    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        return ANALYTICS_DATABASE if model._meta.app_label == "analytics" else None

    def db_for_write(self, model: type[Model], **hints: Any) -> str | None:
        return None

    def allow_relation(self, first: Model, second: Model, **hints: Any) -> bool | None:
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return False if db == ANALYTICS_DATABASE else None
