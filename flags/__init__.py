"""Feature flags (docs/decisions/0028): `is_enabled("ingestion", tenant)`."""

from flags.evaluation import is_enabled

__all__ = ["is_enabled"]
