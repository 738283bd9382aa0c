"""Which entries may run here: the one rule every loader applies.

A signature that is present is always checked: a tampered entry, or one signed
by a retired or unknown key, never runs. Where signatures are required (the
production profile, or REGISTRY_REQUIRE_SIGNED), an entry must also be signed
and promoted (production, or superseded by a later production version and
named by its version). Elsewhere unsigned drafts run, so a developer can try a
prompt before anyone signs or promotes it.
"""

from __future__ import annotations

from django.conf import settings

from registry.models import Entry, State
from registry.signing import SignatureError, verify

PROMOTED_STATES = frozenset({State.PRODUCTION, State.SUPERSEDED})


class RefusedError(ValueError):
    """An entry that must not run in this environment, and why."""


def signatures_required() -> bool:
    """REGISTRY_REQUIRE_SIGNED when set, else whether the profile is production."""
    required: bool | None = getattr(settings, "REGISTRY_REQUIRE_SIGNED", None)
    if required is not None:
        return required
    return getattr(settings, "AIAAS_PROFILE", "development") == "production"


def check_signature(entry: Entry) -> None:
    """Raise RefusedError if the entry carries a signature that does not verify, or
    carries none where signatures are required."""
    if not entry.is_signed and not entry.key_id and not signatures_required():
        return
    try:
        verify(entry.manifest, entry.key_id, entry.signature)
    except SignatureError as error:
        raise RefusedError(f"{entry}: {error}") from None


def check_runnable(entry: Entry) -> None:
    """Raise RefusedError unless `entry` may run here."""
    check_signature(entry)
    if signatures_required() and entry.state not in PROMOTED_STATES:
        raise RefusedError(f"{entry}: only promoted entries run in production")
