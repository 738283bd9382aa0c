"""Writes to the registry of the current schema: new versions, signatures,
promotion and rollback, each with its audit event in the same transaction.

Every change is announced on the control bus (topic "registry") after its
commit, so every process drops its cached entries within a second.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from aiaas import control_bus
from registry import cache, catalog, kinds
from registry.models import TENANT_KINDS, Action, AuditEvent, Entry, Kind, State
from registry.policy import RefusedError, check_signature, signatures_required
from registry.signing import Signature, SignatureError, sign, verify
from tenants.context import current_schema_name

NEXT_STATE = {State.DRAFT: State.STAGING, State.STAGING: State.PRODUCTION}


class RegistryError(ValueError):
    """A registry change that was refused, and why (shown to staff and owners as is)."""


def create_entry(
    kind: str,
    manifest: Any,
    *,
    actor: str,
    signature: Signature | None = None,
    action: Action = Action.CREATED,
) -> Entry:
    """The next version of the manifest's kind and name, as a draft. A given
    signature must verify; none is needed for a draft."""
    check_kind_here(kind)
    try:
        name = kinds.check(kind, manifest)
        if signature is not None:
            verify(manifest, signature.key_id, signature.value)
    except (kinds.ManifestInvalidError, SignatureError) as error:
        raise RegistryError(str(error)) from None
    with transaction.atomic():
        last = Entry.objects.filter(kind=kind, name=name).aggregate(last=Max("version"))["last"] or 0
        try:  # two saves of the same name at once: the unique constraint lets one through
            with transaction.atomic():
                entry = Entry.objects.create(
                    kind=kind,
                    name=name,
                    version=last + 1,
                    manifest=manifest,
                    key_id=signature.key_id if signature else "",
                    signature=signature.value if signature else "",
                    created_by=actor,
                )
        except IntegrityError:
            raise RegistryError(f"{kind} {name}: another version was saved at the same time; retry") from None
        audit(entry, action, actor, to_state=State.DRAFT)
    announce_after_commit(entry)  # outside production a draft runs: every cached copy must see it
    return entry


def check_kind_here(kind: str) -> None:
    """Tenants own prompts and agents (in their schema); tools and models are the platform's."""
    in_public = current_schema_name() == get_public_schema_name()
    if kind in Kind.values and (kind in TENANT_KINDS) == in_public:
        where = "the public schema" if in_public else "a tenant's schema"
        raise RegistryError(f"{kind} entries do not belong in {where}")


def sign_entry(entry: Entry, private_key: Ed25519PrivateKey, key_id: str, *, actor: str) -> Entry:
    """Sign (or re-sign, when rotating keys) an entry's unchanged manifest."""
    signature = sign(entry.manifest, private_key, key_id)
    with transaction.atomic():
        locked = Entry.objects.select_for_update().get(pk=entry.pk)
        locked.key_id, locked.signature = signature.key_id, signature.value
        locked.save(update_fields=["key_id", "signature", "updated_at"])
        audit(locked, Action.SIGNED, actor, note=f"key {key_id}")
    announce_after_commit(locked)
    return locked


def promote(entry: Entry, *, actor: str) -> Entry:
    """Move `entry` one state on: draft to staging, staging to production. Going
    to production supersedes the current production version and needs a valid
    signature where signatures are required."""
    with one_production_version(entry.kind, entry.name), transaction.atomic():
        locked = Entry.objects.select_for_update().get(pk=entry.pk)
        target = NEXT_STATE.get(State(locked.state))
        if target is None:
            raise RegistryError(f"{locked} cannot be promoted (only draft and staging can)")
        if target == State.PRODUCTION:
            check_promotable(locked)
            supersede_current(locked, actor)
        move(locked, target, Action.PROMOTED, actor)
    announce_after_commit(locked)
    return locked


@contextmanager
def one_production_version(kind: str, name: str) -> Iterator[None]:
    """Two versions sent to production at once: the partial unique index lets one
    through, the other is refused with a RegistryError, not a server error."""
    try:
        yield
    except IntegrityError:
        raise RegistryError(f"{kind} {name}: another version reached production at the same time") from None


def check_promotable(entry: Entry) -> None:
    try:
        check_signature(entry)
    except RefusedError as error:
        raise RegistryError(str(error)) from None
    if signatures_required() and not entry.is_signed:
        raise RegistryError(f"{entry}: only signed entries may reach production here")


def supersede_current(entry: Entry, actor: str) -> None:
    current = production_of(entry.kind, entry.name)
    if current is not None:
        move(current, State.SUPERSEDED, Action.PROMOTED, actor, note=f"superseded by v{entry.version}")


def rollback(kind: str, name: str, *, actor: str) -> Entry:
    """Make the previous production version current again; the current one is
    marked rolled back (a later rollback goes further back, never to it)."""
    with one_production_version(kind, name), transaction.atomic():
        current = production_of(kind, name)
        if current is None:
            raise RegistryError(f"{kind} {name} has no production version to roll back")
        previous = (
            Entry.objects.select_for_update()
            .filter(kind=kind, name=name, state=State.SUPERSEDED)
            .order_by("-promoted_at", "-version")
            .first()
        )
        if previous is None:
            raise RegistryError(f"{kind} {name} has no earlier production version to roll back to")
        check_promotable(previous)
        move(current, State.ROLLED_BACK, Action.ROLLED_BACK, actor, note=f"back to v{previous.version}")
        move(previous, State.PRODUCTION, Action.ROLLED_BACK, actor, note=f"instead of v{current.version}")
    announce_after_commit(previous)
    return previous


def production_of(kind: str, name: str) -> Entry | None:
    return Entry.objects.select_for_update().filter(kind=kind, name=name, state=State.PRODUCTION).first()


def move(entry: Entry, target: State, action: Action, actor: str, note: str = "") -> None:
    source = entry.state
    entry.state = target
    fields = ["state", "updated_at"]
    if target == State.PRODUCTION:
        entry.promoted_at = timezone.now()
        fields.append("promoted_at")
    entry.save(update_fields=fields)
    audit(entry, action, actor, from_state=source, to_state=target, note=note)
    if target == State.PRODUCTION and entry.kind == Kind.MODEL:
        try:
            catalog.apply_manifest(entry.manifest)
        except catalog.ModelManifestError as error:
            raise RegistryError(str(error)) from None


def audit(
    entry: Entry, action: Action, actor: str, *, from_state: str = "", to_state: str = "", note: str = ""
) -> AuditEvent:
    return AuditEvent.objects.create(
        entry=entry, action=action, actor=actor, from_state=from_state, to_state=to_state, note=note
    )


def announce_after_commit(entry: Entry) -> None:
    payload = f"{current_schema_name()}:{entry.kind}:{entry.name}"

    def announce() -> None:
        cache.clear()
        control_bus.announce(cache.TOPIC, payload)

    transaction.on_commit(announce)
