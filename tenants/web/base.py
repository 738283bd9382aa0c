"""The one base for pages on a tenant's host. It fails closed.

A page answers 404 unless the request names a tenant (django-tenants sets
`request.tenant`) that is not the public schema, is active, and is the schema
the connection is on. A dashboard page then requires a member of that tenant:
a signed-in, active user of its schema whose session was opened on its host
(`bind_session_to_tenant` at sign-in); anyone else is sent to sign in.

Function pages take `@tenant_page` (or `@manager_page`) and receive a
`PageAccess`. Class-based pages inherit `TenantPageView`, whose checks are
final: a subclass that overrides them, or puts another `dispatch` before them,
raises TypeError at import. The one escape hatch, for the sign-in pages, is
`dangerously_allow_anonymous`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, ClassVar, Concatenate, ParamSpec

from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseBase
from django.views.generic import View
from django_tenants.utils import get_public_schema_name

from accounts.models import User
from tenants.context import current_schema_name
from tenants.models import Tenant

P = ParamSpec("P")
SESSION_TENANT_KEY = "_tenant_schema"
# Set on every view this module guards; tests check every tenant-host URL carries it.
PAGE_MARKER = "tenant_page"
FINAL_ATTRIBUTES = ("as_view", "dispatch", "tenant", "access")


@dataclass(frozen=True)
class PageAccess:
    """Who is on which tenant's page: both checked before the page runs."""

    tenant: Tenant
    user: User

    @property
    def can_manage(self) -> bool:
        return self.user.can_manage_team

    def require_manager(self) -> User:
        if not self.can_manage:
            raise PermissionDenied("Only owners and admins can do this.")
        return self.user


def resolve_tenant(request: HttpRequest) -> Tenant:
    """The active tenant the host names, on its own schema; anything else is a 404."""
    tenant = getattr(request, "tenant", None)
    if (
        not isinstance(tenant, Tenant)
        or tenant.schema_name == get_public_schema_name()
        or not tenant.is_active
        or current_schema_name() != tenant.schema_name
    ):
        raise Http404("No tenant is served here.")
    return tenant


def bind_session_to_tenant(request: HttpRequest, tenant: Tenant) -> None:
    """Mark a freshly signed-in session as opened on `tenant`'s host."""
    request.session[SESSION_TENANT_KEY] = tenant.schema_name


def member_of(request: HttpRequest, tenant: Tenant) -> User | None:
    """The signed-in member of `tenant`, or None. A signed-in session that was not
    opened on this tenant is ended, so the sign-in page cannot bounce it back."""
    user = request.user
    if not user.is_authenticated:
        return None
    if (
        isinstance(user, User)
        and user.is_active
        and request.session.get(SESSION_TENANT_KEY) == tenant.schema_name
    ):
        return user
    logout(request)
    return None


def admit(request: HttpRequest, *, manager_only: bool = False) -> PageAccess | HttpResponseBase:
    """The checks of every dashboard page, in order: tenant (404), member (sign in), role (403)."""
    tenant = resolve_tenant(request)
    user = member_of(request, tenant)
    if user is None:
        return redirect_to_login(request.get_full_path())
    access = PageAccess(tenant=tenant, user=user)
    if manager_only:
        access.require_manager()
    return access


def tenant_page(
    view: Callable[Concatenate[HttpRequest, PageAccess, P], HttpResponseBase],
) -> Callable[Concatenate[HttpRequest, P], HttpResponseBase]:
    """A dashboard page for the tenant's members; the view receives their `PageAccess`."""
    return guard(view, manager_only=False)


def manager_page(
    view: Callable[Concatenate[HttpRequest, PageAccess, P], HttpResponseBase],
) -> Callable[Concatenate[HttpRequest, P], HttpResponseBase]:
    """A dashboard page for the tenant's owners and admins only (403 for members)."""
    return guard(view, manager_only=True)


def guard(
    view: Callable[Concatenate[HttpRequest, PageAccess, P], HttpResponseBase], *, manager_only: bool
) -> Callable[Concatenate[HttpRequest, P], HttpResponseBase]:
    @wraps(view)
    def page(request: HttpRequest, /, *args: P.args, **kwargs: P.kwargs) -> HttpResponseBase:
        access = admit(request, manager_only=manager_only)
        if isinstance(access, HttpResponseBase):
            return access
        return view(request, access, *args, **kwargs)

    setattr(page, PAGE_MARKER, True)
    return page


def is_tenant_page(view: Callable[..., Any]) -> bool:
    """Whether a URL's view goes through this module's checks."""
    view_class = getattr(view, "view_class", None)
    if isinstance(view_class, type):
        return issubclass(view_class, TenantPageView)
    return getattr(view, PAGE_MARKER, False) is True


class TenantPageView(View):
    """Class-based pages of a tenant's host: put it first among the bases."""

    # Strengthens: owners and admins only.
    manager_only: ClassVar[bool] = False
    # Weakens: for signing in, where there is no member yet. The tenant is still checked.
    dangerously_allow_anonymous: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in FINAL_ATTRIBUTES:
            owner = next(klass for klass in cls.__mro__ if name in vars(klass))
            if owner is not TenantPageView:
                raise TypeError(f"{cls.__name__} must not override {name}: tenant pages are final")

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Callable[..., HttpResponseBase]:
        return super().as_view(**initkwargs)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        self._tenant = resolve_tenant(request)
        self._access: PageAccess | None = None
        if not self.dangerously_allow_anonymous:
            access = admit(request, manager_only=self.manager_only)
            if isinstance(access, HttpResponseBase):
                return access
            self._access = access
        return super().dispatch(request, *args, **kwargs)

    @property
    def tenant(self) -> Tenant:
        return self._tenant

    @property
    def access(self) -> PageAccess:
        if self._access is None:
            raise PermissionDenied("This page has no member.")
        return self._access
