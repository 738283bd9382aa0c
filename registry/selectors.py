"""Reads of the registry: what runs here, versions, history.

Every entry handed to a caller that will run it has passed the policy
(registry/policy.py) just now or when the process's copy was loaded.
"""

from __future__ import annotations

import logging

from django.db.models import QuerySet
from django_tenants.utils import get_public_schema_name, schema_context

from registry import cache
from registry.models import AuditEvent, Entry, State
from registry.policy import RefusedError, check_runnable, check_signature, signatures_required

logger = logging.getLogger(__name__)


class NotFoundError(LookupError):
    pass


def resolve(kind: str, name: str, version: int | None = None) -> Entry:
    """The entry that runs for `name` (pinned to `version`, else the current one) in
    the current schema. Raises NotFoundError, or RefusedError when it may not run here."""
    entry = pinned(kind, name, version) if version is not None else current(kind, name)
    if entry is None:
        raise NotFoundError(
            f"No {kind} `{name}` version {version}."
            if version is not None
            else f"No current {kind} `{name}`."
        )
    check_runnable(entry)
    return entry


def candidate(kind: str, name: str, version: int | None = None) -> Entry:
    """The pinned version, else the latest, of any state (an experiment tries one
    before it is promoted); its signature is still checked (policy.check_signature)."""
    versions = Entry.objects.filter(kind=kind, name=name)
    entry = versions.filter(version=version).first() if version is not None else versions.first()
    if entry is None:
        raise NotFoundError(f"No {kind} `{name}` version {version or 'at all'}.")
    check_signature(entry)
    return entry


def pinned(kind: str, name: str, version: int) -> Entry | None:
    return Entry.objects.filter(kind=kind, name=name, version=version).first()


def current(kind: str, name: str) -> Entry | None:
    """The production version; where signatures are not required and none is in
    production, the latest version not rolled back."""
    versions = Entry.objects.filter(kind=kind, name=name)
    production = versions.filter(state=State.PRODUCTION).first()
    if production is not None or signatures_required():
        return production
    return versions.exclude(state=State.ROLLED_BACK).order_by("-version").first()


def runnable_entries(kind: str) -> dict[str, Entry]:
    """The current, runnable entry of each name of `kind` in the current schema;
    refused ones are logged and left out."""
    entries: dict[str, Entry] = {}
    for name in Entry.objects.filter(kind=kind).values_list("name", flat=True).distinct():
        try:
            entries[name] = resolve(kind, name)
        except NotFoundError:
            continue
        except RefusedError as error:
            logger.warning("registry entry refused: %s", error)
    return entries


def platform_entries(kind: str) -> dict[str, Entry]:
    """runnable_entries of the public schema, from this process's cached copy."""

    def load() -> dict[str, Entry]:
        with schema_context(get_public_schema_name()):
            return runnable_entries(kind)

    return cache.get(kind, load)


def entries(kind: str) -> QuerySet[Entry]:
    """Every version of every `kind` entry in the current schema, newest first per name."""
    return Entry.objects.filter(kind=kind).order_by("name", "-version")


def latest_versions(kind: str) -> QuerySet[Entry]:
    """One row per name: its newest version."""
    return Entry.objects.filter(kind=kind).order_by("name", "-version").distinct("name")


def production_versions(kind: str) -> dict[str, int]:
    """Each name's production version number."""
    rows = Entry.objects.filter(kind=kind, state=State.PRODUCTION).values_list("name", "version")
    return dict(rows)


def versions_of(kind: str, name: str) -> QuerySet[Entry]:
    return Entry.objects.filter(kind=kind, name=name).order_by("-version")


def history_of(kind: str, name: str) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(entry__kind=kind, entry__name=name).select_related("entry")
