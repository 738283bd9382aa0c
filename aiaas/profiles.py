"""Environment profiles: AIAAS_PROFILE=development|staging|production picks the defaults
of the settings that differ between environments (docs/profiles.md). Each setting's own
environment variable still wins. Unset, the profile is production: a deployment that
forgets it gets the safe defaults, and `make run` and the tests set development."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from django.core.exceptions import ImproperlyConfigured


class Profile(StrEnum):
    DEVELOPMENT = "development"
    STAGING = "staging"
    PRODUCTION = "production"


@dataclass(frozen=True)
class ProfileDefaults:
    debug: bool
    log_format: str
    secure_cookies: bool
    ssl_redirect: bool
    hsts_seconds: int
    hsts_include_subdomains: bool
    celery_worker_concurrency: int
    signups_per_ip_per_hour: int
    signups_per_hour: int


DEFAULTS = {
    Profile.DEVELOPMENT: ProfileDefaults(
        debug=True,
        log_format="text",
        secure_cookies=False,
        ssl_redirect=False,
        hsts_seconds=0,
        hsts_include_subdomains=False,
        celery_worker_concurrency=2,
        signups_per_ip_per_hour=100,
        signups_per_hour=1_000,
    ),
    # Production's security with a one-hour HSTS, so a TLS mistake on a staging host is undone in an hour.
    Profile.STAGING: ProfileDefaults(
        debug=False,
        log_format="json",
        secure_cookies=True,
        ssl_redirect=True,
        hsts_seconds=3_600,
        hsts_include_subdomains=False,
        celery_worker_concurrency=4,
        signups_per_ip_per_hour=10,
        signups_per_hour=100,
    ),
    Profile.PRODUCTION: ProfileDefaults(
        debug=False,
        log_format="json",
        secure_cookies=True,
        ssl_redirect=True,
        hsts_seconds=31_536_000,
        hsts_include_subdomains=True,
        celery_worker_concurrency=8,
        signups_per_ip_per_hour=10,
        signups_per_hour=100,
    ),
}


def profile_named(name: str) -> Profile:
    try:
        return Profile(name)
    except ValueError:
        choices = ", ".join(profile.value for profile in Profile)
        raise ImproperlyConfigured(f"AIAAS_PROFILE must be one of {choices}, not {name!r}.") from None
