"""The dashboard gate: pages of a feature the tenant has off answer 404 with a page
saying so, to its members (others are sent to sign in, as by every page)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import render
from django.urls import URLPattern

from flags import is_enabled
from tenants.web.base import admit, resolve_tenant

View = Callable[..., HttpResponseBase]


def feature_page(key: str, view: View) -> View:
    """`view`, when flag `key` is on for the host's tenant. The view keeps its own
    checks and markers (tenants/web/base.py); these run first only when the flag is off."""

    @wraps(view)
    def page(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if is_enabled(key, resolve_tenant(request)):
            return view(request, *args, **kwargs)
        access = admit(request)
        if isinstance(access, HttpResponseBase):
            return access
        return render(request, "flags/feature_disabled.html", {"feature": key}, status=404)

    return page


def feature_pages(key: str, patterns: Sequence[URLPattern]) -> list[URLPattern]:
    """`patterns`, each view gated by flag `key` (for an app's dashboard urls.py)."""
    return [
        URLPattern(pattern.pattern, feature_page(key, pattern.callback), pattern.default_args, pattern.name)
        for pattern in patterns
    ]
