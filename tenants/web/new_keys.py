"""A new key's secret, handed from the POST that created it to the page it
redirects to (Post/Redirect/Get), which shows it once.

The secret never enters the session (sessions are rows that live for weeks):
it waits in Redis under a random reference, for NEW_KEY_SECONDS at most, and
the page takes it with GETDEL. The session holds the reference, the key's id
and name. A reload, a second tab, or a page opened too late finds nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from django.http import HttpRequest

from aiaas.redis_clients import sync_client
from aiaas.redis_keys import tenant_key
from tenants.models import Tenant
from tenants.services import IssuedApiKey

NEW_KEY_SECONDS = 300
SESSION_KEY = "new_api_key"


@dataclass(frozen=True)
class NewKeySecret:
    key_id: int
    name: str
    secret: str


def hand_over(request: HttpRequest, tenant: Tenant, issued: IssuedApiKey) -> None:
    reference = secrets.token_urlsafe(24)
    sync_client().set(secret_key(tenant, reference), issued.secret, ex=NEW_KEY_SECONDS)
    request.session[SESSION_KEY] = {
        "key_id": issued.api_key.pk,
        "name": issued.api_key.name,
        "reference": reference,
    }


def take_over(request: HttpRequest, tenant: Tenant) -> NewKeySecret | None:
    """The secret handed over to this session, once; None if none is waiting."""
    kept = request.session.pop(SESSION_KEY, None)
    if not isinstance(kept, dict) or not isinstance(kept.get("reference"), str):
        return None
    secret = sync_client().getdel(secret_key(tenant, kept["reference"]))
    if not isinstance(secret, bytes):
        return None
    return NewKeySecret(int(kept["key_id"]), str(kept["name"]), secret.decode())


def secret_key(tenant: Tenant, reference: str) -> str:
    return tenant_key("new-key-secret", tenant.pk, hashlib.sha256(reference.encode()).hexdigest())
