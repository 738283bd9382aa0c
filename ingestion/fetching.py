"""URL sources: fetched through the SSRF guard (aiaas/outbound.py) with the tenant's
outbound policy and size and time limits, each redirect checked again (host, port
and addresses), robots.txt honoured, and only the content types ingestion can parse
accepted.

robots.txt follows RFC 9309: it is read through the same guard and limits, a
4xx answer allows everything, a 5xx or no answer disallows (the site may be
down: the document fails and can be re-ingested later). Every failure is a
FetchError whose message is what the document's `error` says.
"""

from __future__ import annotations

import asyncio
import urllib.robotparser
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import aiohttp
from django.conf import settings

from aiaas.outbound import ForbiddenTargetError, Policy, Response, ResponseTooLargeError, check_url, send
from tenants.selectors import current_outbound_policy

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
ALLOWED_CONTENT_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "text/plain",
        "text/markdown",
        "text/x-markdown",
        "application/pdf",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    }
)
# RFC 9309: crawlers parse at least the first 500 KiB of a robots.txt.
ROBOTS_MAX_BYTES = 512 * 1024


class FetchError(Exception):
    """The URL cannot be ingested; the message says why."""


@dataclass(frozen=True, slots=True)
class Fetched:
    url: str  # after redirects
    content_type: str
    data: bytes


def fetch_policy() -> Policy:
    """The current tenant's outbound policy; INGESTION_ALLOWED_HOSTS may resolve to
    private addresses."""
    return current_outbound_policy(settings.INGESTION_ALLOWED_HOSTS)


def check_fetchable(url: str) -> str:
    """The URL as it will be fetched, if its form, host, port and literal address are
    allowed to the current tenant; raises IngestionInputError otherwise (the host's
    addresses are checked when fetched)."""
    from ingestion.services import IngestionInputError

    if not isinstance(url, str) or len(url) > 2000:
        raise IngestionInputError("url must be an http or https URL of at most 2000 characters", "url")
    try:
        return str(check_url(url.strip(), fetch_policy()))
    except ForbiddenTargetError as error:
        raise IngestionInputError(str(error), "url", code="forbidden_url") from None


async def fetch(url: str, policy: Policy) -> Fetched:
    """The URL's content, within settings.INGESTION_FETCH_TIMEOUT_SECONDS in all; every
    hop (redirects, robots.txt) within `policy` (`fetch_policy()`)."""
    try:
        async with asyncio.timeout(settings.INGESTION_FETCH_TIMEOUT_SECONDS):
            return await fetch_following(url, policy)
    except TimeoutError:
        raise FetchError(
            f"fetching {url} took longer than {settings.INGESTION_FETCH_TIMEOUT_SECONDS:g} seconds"
        ) from None


async def fetch_following(url: str, policy: Policy) -> Fetched:
    robots: dict[str, urllib.robotparser.RobotFileParser] = {}
    for _ in range(settings.INGESTION_FETCH_MAX_REDIRECTS + 1):
        await check_robots(url, robots, policy)
        response = await get(url, settings.INGESTION_MAX_FILE_BYTES, policy)
        if response.status in REDIRECT_STATUSES and "Location" in response.headers:
            url = urljoin(url, response.headers["Location"])
            continue
        if response.status != 200:
            raise FetchError(f"{url} answered HTTP {response.status}")
        return Fetched(url, checked_content_type(url, response), response.body)
    raise FetchError(f"{url}: more than {settings.INGESTION_FETCH_MAX_REDIRECTS} redirects")


async def get(url: str, max_bytes: int, policy: Policy) -> Response:
    try:
        return await send(
            "GET",
            url,
            policy=policy,
            timeout_seconds=settings.INGESTION_FETCH_TIMEOUT_SECONDS,
            max_bytes=max_bytes,
            headers={"User-Agent": settings.INGESTION_FETCH_USER_AGENT},
        )
    except ForbiddenTargetError as error:
        raise FetchError(f"refused target: {error}") from None
    except ResponseTooLargeError as error:
        raise FetchError(f"{url}: {error}") from None
    except (aiohttp.ClientError, OSError) as error:
        raise FetchError(f"{url} could not be fetched: {type(error).__name__}: {error}") from None


def checked_content_type(url: str, response: Response) -> str:
    content_type = response.headers.get("Content-Type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type and media_type not in ALLOWED_CONTENT_TYPES:
        raise FetchError(f"{url} has content type {media_type}, which cannot be ingested")
    return content_type


async def check_robots(
    url: str, robots: dict[str, urllib.robotparser.RobotFileParser], policy: Policy
) -> None:
    """FetchError unless the site's robots.txt lets our user agent fetch `url`."""
    parts = urlsplit(url)
    origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    if origin not in robots:
        robots[origin] = await read_robots(origin, policy)
    if not robots[origin].can_fetch(settings.INGESTION_FETCH_USER_AGENT, url):
        raise FetchError(f"{url} is disallowed by the site's robots.txt")


async def read_robots(origin: str, policy: Policy) -> urllib.robotparser.RobotFileParser:
    parser = urllib.robotparser.RobotFileParser()
    robots_url = f"{origin}/robots.txt"
    for _ in range(settings.INGESTION_FETCH_MAX_REDIRECTS + 1):
        try:
            response = await get(robots_url, ROBOTS_MAX_BYTES, policy)
        except FetchError as error:
            raise FetchError(f"the site's robots.txt could not be read: {error}") from None
        if response.status in REDIRECT_STATUSES and "Location" in response.headers:
            robots_url = urljoin(robots_url, response.headers["Location"])
            continue
        if response.status == 200:
            parser.parse(response.body.decode(response.encoding, errors="replace").splitlines())
        elif 400 <= response.status < 500:
            parser.parse([])  # no rules: everything is allowed
        else:
            raise FetchError(f"the site's robots.txt answered HTTP {response.status}")
        return parser
    raise FetchError("the site's robots.txt redirects too many times")
