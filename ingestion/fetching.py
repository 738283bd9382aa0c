"""URL sources: fetched through the SSRF guard (aiaas/outbound.py) with size and time
limits, each redirect checked again, robots.txt honoured, and only the content
types ingestion can parse accepted."""

from __future__ import annotations

from django.conf import settings

from aiaas.outbound import ForbiddenTargetError, allowed_hosts, check_url


def fetch_allowed_hosts() -> frozenset[str]:
    return allowed_hosts(settings.INGESTION_ALLOWED_HOSTS)


def check_fetchable(url: str) -> str:
    """The URL as it will be fetched, if its form and literal host are allowed; raises
    IngestionInputError otherwise (the host's addresses are checked when fetched)."""
    from ingestion.services import IngestionInputError

    if not isinstance(url, str) or len(url) > 2000:
        raise IngestionInputError("url must be an http or https URL of at most 2000 characters", "url")
    try:
        return str(check_url(url.strip(), fetch_allowed_hosts()))
    except ForbiddenTargetError as error:
        raise IngestionInputError(f"url: {error}", "url", code="forbidden_url") from None
