"""`manage.py check --deploy`: our settings that are unsafe in production, beside
Django's own security checks. Each has an id of its own (aiaas.W001...); the
simulated provider's is routing's (routing/checks.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register

from aiaas.profiles import Profile
from aiaas.proxies import trusted_networks

MIN_SECRET_KEY_LENGTH = 50
MIN_SECRET_KEY_CHARACTERS = 5
MIN_METRICS_TOKEN_LENGTH = 32
CSP_MIDDLEWARE = "csp.middleware.CSPMiddleware"
UNSAFE_SCRIPT_SOURCES = frozenset({"*", "'unsafe-inline'", "'unsafe-eval'", "http:", "https:", "data:"})
# Django's backends that keep an email in the process, a file or the log: nobody receives it.
UNSENT_EMAIL_BACKENDS = frozenset(
    f"django.core.mail.backends.{name}.EmailBackend" for name in ("console", "locmem", "filebased", "dummy")
)


@register(Tags.security, deploy=True)
def check_production_settings(app_configs: Sequence[Any] | None, **kwargs: Any) -> list[CheckMessage]:
    checks = (
        profile_is_production,
        debug_is_off,
        metrics_are_guarded,
        secret_key_is_strong,
        fallback_keys_are_sound,
        hosts_are_named,
        hsts_is_on,
        proxies_are_named,
        content_security_policy_is_on,
        emails_are_sent,
    )
    return [message for check in checks for message in check()]


def profile_is_production() -> list[CheckMessage]:
    if settings.AIAAS_PROFILE == Profile.PRODUCTION:
        return []
    return [
        Warning(
            f"AIAAS_PROFILE is {settings.AIAAS_PROFILE}: its defaults are not production's.",
            hint="Set AIAAS_PROFILE=production (docs/profiles.md).",
            id="aiaas.W001",
        )
    ]


def debug_is_off() -> list[CheckMessage]:
    if not settings.DEBUG:
        return []
    return [
        Warning(
            "DEBUG is on: error pages show settings and code to anyone.",
            hint="Unset DEBUG (the production profile turns it off).",
            id="aiaas.W002",
        )
    ]


def metrics_are_guarded() -> list[CheckMessage]:
    token: str = settings.METRICS_TOKEN
    if not token and not settings.METRICS_LISTEN:
        return [
            Warning(
                "METRICS_TOKEN and METRICS_LISTEN are unset: nothing can scrape the metrics.",
                hint="Set METRICS_TOKEN (a random string) or METRICS_LISTEN (docs/observability.md).",
                id="aiaas.W003",
            )
        ]
    if token and len(token) < MIN_METRICS_TOKEN_LENGTH:
        return [
            Warning(
                f"METRICS_TOKEN is shorter than {MIN_METRICS_TOKEN_LENGTH} characters: it can be guessed.",
                hint="python -c 'import secrets; print(secrets.token_urlsafe(32))'",
                id="aiaas.W004",
            )
        ]
    return []


def is_weak_key(key: str) -> bool:
    return (
        key.startswith("django-insecure")
        or len(key) < MIN_SECRET_KEY_LENGTH
        or len(set(key)) < MIN_SECRET_KEY_CHARACTERS
    )


def secret_key_is_strong() -> list[CheckMessage]:
    if not is_weak_key(settings.SECRET_KEY):
        return []
    return [
        Warning(
            "SECRET_KEY starts with django-insecure, or is short or repetitive: sessions, "
            "password resets and signed tokens can be forged.",
            hint="python -c 'import secrets; print(secrets.token_urlsafe(50))'",
            id="aiaas.W005",
        )
    ]


def fallback_keys_are_sound() -> list[CheckMessage]:
    fallbacks: list[str] = list(settings.SECRET_KEY_FALLBACKS)
    if settings.SECRET_KEY in fallbacks or len(set(fallbacks)) < len(fallbacks):
        problem = "repeats SECRET_KEY or one of its own keys: a rotation that never finished"
    elif any(is_weak_key(key) for key in fallbacks):
        problem = "holds a short, repetitive or django-insecure key: what it signed can be forged"
    else:
        return []
    return [
        Warning(
            f"SECRET_KEY_FALLBACKS {problem}.",
            hint="List only the keys SECRET_KEY replaced, and drop each once its sessions and "
            "links have expired (docs/deploy.md, rotating SECRET_KEY).",
            id="aiaas.W010",
        )
    ]


def hosts_are_named() -> list[CheckMessage]:
    if "*" not in settings.ALLOWED_HOSTS and settings.BASE_DOMAIN != "localhost":
        return []
    return [
        Warning(
            "ALLOWED_HOSTS holds '*' or BASE_DOMAIN is localhost: tenants are found by "
            "host, and links in emails would name any host a client sends.",
            hint="Set BASE_DOMAIN to the platform's domain; list extra hosts in EXTRA_ALLOWED_HOSTS.",
            id="aiaas.W006",
        )
    ]


def hsts_is_on() -> list[CheckMessage]:
    if settings.SECURE_HSTS_SECONDS > 0:
        return []
    return [
        Warning(
            "SECURE_HSTS_SECONDS is 0: browsers may reach the dashboard over plain HTTP.",
            hint="Unset it (the production profile sends a year) once HTTPS works.",
            id="aiaas.W007",
        )
    ]


def proxies_are_named() -> list[CheckMessage]:
    if not settings.BEHIND_TLS_PROXY:
        return []
    if not settings.TRUSTED_PROXIES:
        problem = (
            "TRUSTED_PROXIES is empty: forwarded headers are ignored, every request looks like plain HTTP"
        )
    elif any(network.prefixlen == 0 for network in trusted_networks(settings.TRUSTED_PROXIES)):
        problem = "TRUSTED_PROXIES holds a network of every address: any client can claim another's address"
    else:
        return []
    return [
        Warning(
            f"BEHIND_TLS_PROXY is on but {problem}.",
            hint="Set TRUSTED_PROXIES to the proxy's addresses or networks (docs/deploy.md).",
            id="aiaas.W011",
        )
    ]


def content_security_policy_is_on() -> list[CheckMessage]:
    directives = (getattr(settings, "CONTENT_SECURITY_POLICY", None) or {}).get("DIRECTIVES", {})
    scripts = directives.get("script-src", directives.get("default-src", []))
    if CSP_MIDDLEWARE in settings.MIDDLEWARE and scripts and not set(scripts) & UNSAFE_SCRIPT_SOURCES:
        return []
    return [
        Warning(
            "No Content-Security-Policy, or one that allows inline or evaluated scripts: "
            "an injected script would run on the dashboard.",
            hint=f"Keep {CSP_MIDDLEWARE} in MIDDLEWARE and aiaas/settings.py's CONTENT_SECURITY_POLICY "
            "(docs/decisions/0043).",
            id="aiaas.W012",
        )
    ]


def emails_are_sent() -> list[CheckMessage]:
    if settings.EMAIL_BACKEND not in UNSENT_EMAIL_BACKENDS:
        return []
    return [
        Warning(
            f"EMAIL_BACKEND is {settings.EMAIL_BACKEND}: no email leaves this process, so a new "
            "workspace never gets the link that lets it call models, and nobody gets an invitation "
            "or a password reset.",
            hint="Set EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend and EMAIL_HOST, "
            "EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD, EMAIL_USE_TLS (docs/deploy.md).",
            id="aiaas.W013",
        )
    ]
