"""AIAAS_PROFILE picks each environment's defaults (docs/profiles.md), every one still
overridable by its own variable; `check --deploy` names our unsafe production settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from django.conf import settings
from django.core.checks import Tags, run_checks
from django.test import override_settings

from routing.models import Provider
from routing.services import register_simulated_provider

PRINTED = (
    "AIAAS_PROFILE",
    "DEBUG",
    "LOG_FORMAT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "CELERY_WORKER_CONCURRENCY",
    "SIGNUPS_PER_IP_PER_HOUR",
    "SIGNUPS_PER_HOUR",
)
# Variables that would override a profile's defaults: unset in the child unless a test sets them.
OVERRIDES = {
    "AIAAS_PROFILE",
    "DEBUG",
    "LOG_FORMAT",
    "SECURE_COOKIES",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "CELERY_WORKER_CONCURRENCY",
    "SIGNUPS_PER_IP_PER_HOUR",
    "SIGNUPS_PER_HOUR",
}
SECRET = "s3cr3t-" + "abcdefghij" * 5


def settings_of(**environ: str) -> dict[str, Any] | str:
    """The settings a process gets from this environment, or its error output."""
    env = {key: value for key, value in os.environ.items() if key not in OVERRIDES}
    script = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{name: getattr(settings, name) for name in {PRINTED!r}}}))"
    )
    result = subprocess.run(  # noqa: S603 - our interpreter, our script
        [sys.executable, "-c", script],
        env={**env, "DJANGO_SETTINGS_MODULE": "aiaas.settings", "SECRET_KEY": SECRET, **environ},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        return result.stderr
    printed: dict[str, Any] = json.loads(result.stdout)
    return printed


def test_the_development_profile_is_for_one_machine() -> None:
    assert settings_of(AIAAS_PROFILE="development") == {
        "AIAAS_PROFILE": "development",
        "DEBUG": True,
        "LOG_FORMAT": "text",
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 0,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "CELERY_WORKER_CONCURRENCY": 2,
        "SIGNUPS_PER_IP_PER_HOUR": 100,
        "SIGNUPS_PER_HOUR": 1000,
    }


def test_the_staging_profile_is_production_with_a_short_hsts() -> None:
    assert settings_of(AIAAS_PROFILE="staging") == {
        "AIAAS_PROFILE": "staging",
        "DEBUG": False,
        "LOG_FORMAT": "json",
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 3600,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "CELERY_WORKER_CONCURRENCY": 4,
        "SIGNUPS_PER_IP_PER_HOUR": 10,
        "SIGNUPS_PER_HOUR": 100,
    }


def test_the_production_profile_is_the_default() -> None:
    production = {
        "AIAAS_PROFILE": "production",
        "DEBUG": False,
        "LOG_FORMAT": "json",
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "CELERY_WORKER_CONCURRENCY": 8,
        "SIGNUPS_PER_IP_PER_HOUR": 10,
        "SIGNUPS_PER_HOUR": 100,
    }

    assert settings_of(AIAAS_PROFILE="production") == production
    assert settings_of() == production


def test_each_default_yields_to_its_own_variable() -> None:
    printed = settings_of(
        AIAAS_PROFILE="production",
        DEBUG="true",
        LOG_FORMAT="text",
        SECURE_COOKIES="false",
        SECURE_SSL_REDIRECT="false",
        SECURE_HSTS_SECONDS="60",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="false",
        CELERY_WORKER_CONCURRENCY="3",
        SIGNUPS_PER_IP_PER_HOUR="5",
        SIGNUPS_PER_HOUR="50",
    )

    assert printed == {
        "AIAAS_PROFILE": "production",
        "DEBUG": True,
        "LOG_FORMAT": "text",
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 60,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "CELERY_WORKER_CONCURRENCY": 3,
        "SIGNUPS_PER_IP_PER_HOUR": 5,
        "SIGNUPS_PER_HOUR": 50,
    }


def test_an_unknown_profile_refuses_to_start() -> None:
    error = settings_of(AIAAS_PROFILE="prod")

    assert isinstance(error, str)
    assert "AIAAS_PROFILE must be one of development, staging, production, not 'prod'." in error


UNSAFE_INLINE_SCRIPTS = {
    "DIRECTIVES": {"default-src": ["'self'"], "script-src": ["'self'", "'unsafe-inline'"]}
}
SAFE = {
    "AIAAS_PROFILE": "production",
    "DEBUG": False,
    "METRICS_TOKEN": "m" * 16 + "etrics-token-0123456789",
    "METRICS_LISTEN": "",
    "SECRET_KEY": SECRET,
    "ALLOWED_HOSTS": ["aiaas.example", ".aiaas.example"],
    "BASE_DOMAIN": "aiaas.example",
    "SECURE_HSTS_SECONDS": 31_536_000,
    "SECRET_KEY_FALLBACKS": ["0ld-" + "klmnopqrst" * 5],
    "BEHIND_TLS_PROXY": True,
    "TRUSTED_PROXIES": ["10.0.0.0/8", "fd00::/8"],
    "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
}


def our_warnings() -> list[str]:
    messages = run_checks(include_deployment_checks=True, tags=[Tags.security])
    return sorted(message.id for message in messages if message.id and message.id.startswith("aiaas."))


@pytest.fixture
def no_simulated_provider(db: None) -> None:
    Provider.objects.filter(is_simulated=True).update(is_enabled=False)


def test_safe_production_settings_pass_our_deploy_checks(no_simulated_provider: None) -> None:
    with override_settings(**SAFE):
        assert our_warnings() == []


@pytest.mark.parametrize(
    ("unsafe", "check_id"),
    [
        ({"AIAAS_PROFILE": "staging"}, "aiaas.W001"),
        ({"DEBUG": True}, "aiaas.W002"),
        ({"METRICS_TOKEN": ""}, "aiaas.W003"),
        ({"METRICS_TOKEN": "short"}, "aiaas.W004"),
        ({"SECRET_KEY": "django-insecure-" + "abcdefghij" * 5}, "aiaas.W005"),
        ({"SECRET_KEY": "x" * 60}, "aiaas.W005"),
        ({"ALLOWED_HOSTS": ["*"]}, "aiaas.W006"),
        ({"BASE_DOMAIN": "localhost"}, "aiaas.W006"),
        ({"SECURE_HSTS_SECONDS": 0}, "aiaas.W007"),
        ({"SECRET_KEY_FALLBACKS": [SECRET]}, "aiaas.W010"),
        ({"SECRET_KEY_FALLBACKS": ["old-and-short"]}, "aiaas.W010"),
        ({"BEHIND_TLS_PROXY": True, "TRUSTED_PROXIES": []}, "aiaas.W011"),
        ({"BEHIND_TLS_PROXY": True, "TRUSTED_PROXIES": ["10.0.0.0/8", "0.0.0.0/0"]}, "aiaas.W011"),
        (
            {"MIDDLEWARE": [m for m in settings.MIDDLEWARE if m != "csp.middleware.CSPMiddleware"]},
            "aiaas.W012",
        ),
        ({"CONTENT_SECURITY_POLICY": UNSAFE_INLINE_SCRIPTS}, "aiaas.W012"),
        ({"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}, "aiaas.W013"),
        ({"EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"}, "aiaas.W013"),
    ],
)
def test_each_unsafe_setting_is_reported_with_its_id(
    unsafe: dict[str, Any], check_id: str, no_simulated_provider: None
) -> None:
    with override_settings(**{**SAFE, **unsafe}):
        assert our_warnings() == [check_id]


def test_a_metrics_listener_without_a_token_is_safe(no_simulated_provider: None) -> None:
    with override_settings(**{**SAFE, "METRICS_TOKEN": "", "METRICS_LISTEN": "127.0.0.1:9100"}):
        assert our_warnings() == []


def test_the_simulated_provider_is_reported(no_simulated_provider: None) -> None:
    register_simulated_provider("http://127.0.0.1:9")

    with override_settings(**SAFE):
        assert our_warnings() == ["aiaas.W009"]
