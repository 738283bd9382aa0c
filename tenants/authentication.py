"""API-key authentication: the tenant of an API request comes from its key."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from aiaas import logs
from tenants.context import activate_tenant
from tenants.models import ApiKey
from tenants.rejected_keys import find_usable_api_key_remembering
from tenants.services import record_api_key_use


class InvalidApiKey(exceptions.AuthenticationFailed):
    default_detail = "Incorrect, revoked or expired API key provided."
    default_code = "invalid_api_key"


class EmailNotVerified(exceptions.PermissionDenied):
    default_detail = "Confirm the owner's email address first: open the link we sent at signup."
    default_code = "email_not_verified"


class MissingApiKey(exceptions.NotAuthenticated):
    default_detail = (
        "You didn't provide an API key. Send it in the Authorization header "
        "as 'Authorization: Bearer YOUR_KEY'."
    )
    default_code = "missing_api_key"


def bearer_token(request: Request) -> str | None:
    header = get_authorization_header(request).split()
    if not header:
        return None
    if len(header) != 2 or header[0].lower() != b"bearer":
        raise InvalidApiKey("The Authorization header must read 'Bearer YOUR_KEY'.")
    try:
        return header[1].decode("ascii")
    except UnicodeDecodeError:
        raise InvalidApiKey() from None


class ApiKeyAuthentication(BaseAuthentication):
    """Resolve the key, then point the connection at the key's tenant schema.

    Until this runs the connection is on the public schema, where no tenant
    table exists, so a view that forgets authentication fails instead of
    reading another tenant's data.
    """

    def authenticate(self, request: Request) -> tuple[None, ApiKey] | None:
        raw_key = bearer_token(request)
        if raw_key is None:
            return None
        api_key = find_usable_api_key_remembering(raw_key)
        if api_key is None:
            raise InvalidApiKey()
        logs.bind(key_prefix=api_key.prefix)
        if not api_key.tenant.is_email_verified:
            raise EmailNotVerified()
        activate_tenant(api_key.tenant)
        request._request.tenant = api_key.tenant  # type: ignore[attr-defined]
        record_api_key_use(api_key)
        return None, api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
