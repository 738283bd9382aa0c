"""One-time sign-in tokens from the public host to a tenant's host (docs/decisions/0032).

Signup runs on the public host, but a dashboard session must be opened on the
tenant's own host (cookies are per host, and tenants/web/base.py binds each
session to its tenant). So signup mints a token and sends the browser to
`/welcome/<token>/` on the new host, which takes it and signs the owner in.
A token:

- is signed with SECRET_KEY (salt LOGIN_TOKEN_SALT) over the tenant's id and
  schema, the user's id and a random nonce, and expires after
  LOGIN_TOKEN_SECONDS;
- works once: its nonce is stored in Redis when minted, with the same expiry,
  and taken with GETDEL, so a replayed or shared token finds nothing;
- works on its own tenant's host only, and only for that user while active.
"""

from __future__ import annotations

import hashlib
import secrets

from django.core import signing

from aiaas.redis_clients import sync_client
from aiaas.redis_keys import tenant_key
from tenants.models import Tenant

LOGIN_TOKEN_SALT = "accounts.login-token"  # noqa: S105 - a salt, not a secret
LOGIN_TOKEN_SECONDS = 60


def mint_login_token(tenant: Tenant, user_id: int) -> str:
    """A token that signs user `user_id` in on `tenant`'s host, once, within LOGIN_TOKEN_SECONDS."""
    nonce = secrets.token_urlsafe(24)
    sync_client().set(nonce_key(tenant.pk, nonce), str(user_id), ex=LOGIN_TOKEN_SECONDS)
    return signing.dumps([tenant.pk, tenant.schema_name, user_id, nonce], salt=LOGIN_TOKEN_SALT)


def take_login_token(tenant: Tenant, token: str) -> int | None:
    """The id of the user `token` signs in on `tenant`'s host, or None if it is
    forged, expired, already used or made for another tenant."""
    try:
        tenant_id, schema_name, user_id, nonce = signing.loads(
            token, salt=LOGIN_TOKEN_SALT, max_age=LOGIN_TOKEN_SECONDS
        )
    except (signing.BadSignature, ValueError, TypeError):  # SignatureExpired included
        return None
    if (tenant_id, schema_name) != (tenant.pk, tenant.schema_name) or not isinstance(nonce, str):
        return None
    stored = sync_client().getdel(nonce_key(tenant.pk, nonce))
    if stored is None or stored != str(user_id).encode():
        return None
    return int(user_id)


def nonce_key(tenant_id: int, nonce: str) -> str:
    return tenant_key("login-token", tenant_id, hashlib.sha256(nonce.encode()).hexdigest())
