"""The browser suite's fixtures: one chromium for the package, a context per page."""

from __future__ import annotations

import os
import threading
from collections.abc import Generator, Iterator

import pytest
from django.test import override_settings
from playwright.sync_api import Browser, BrowserContext
from pytest_django import DjangoDbBlocker

from agents.runtime import close_runtime
from testing.browser import (
    AuditedPage,
    OpenPage,
    Viewport,
    chromium_executable,
    launched_chromium,
    new_context,
    screenshots_directory,
)
from testing.celery import worker_thread


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Debian's chromium, launched once for the package, or the package skipped.

    Playwright's synchronous API keeps its event loop marked as running in this
    thread between calls, which Django would take for async code and refuse the
    ORM to; nothing here is async, so the check is off while the browser is up.
    """
    executable = chromium_executable()
    if executable is None:
        pytest.skip("no chromium: apt-get install chromium (as .ci/run does) to run the browser suite")
    with pytest.MonkeyPatch.context() as patch, launched_chromium(executable) as launched:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield launched


CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


@pytest.fixture
def open_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[OpenPage]:
    """Pages in fresh contexts; each must have audited every document it loaded,
    and the Content-Security-Policy must have refused nothing (unless the test
    failed already: a failed step leaves its page unaudited)."""
    opened: list[tuple[BrowserContext, AuditedPage]] = []

    def open_at(viewport: Viewport) -> AuditedPage:
        context = new_context(browser, viewport)
        page = AuditedPage(context.new_page(), viewport, screenshots_directory())
        opened.append((context, page))
        return page

    yield open_at
    unaudited = [url for _, page in opened for url in page.unaudited()]
    refused = [refusal for _, page in opened for refusal in page.refused_by_policy]
    for context, _ in opened:
        context.close()
    if not request.node.stash.get(CALL_FAILED, True):
        assert not unaudited, f"pages loaded and never checked with axe: {unaudited}"
        assert not refused, "the Content-Security-Policy refused:\n" + "\n".join(refused)


@pytest.fixture(scope="package")
def runs_worker(django_db_setup: object, django_db_blocker: DjangoDbBlocker) -> Iterator[str]:
    """A real Celery worker thread on a runs queue of this run's own, for agent runs
    started from the dashboard."""
    queue_name = f"test-browser-runs-{os.getpid()}"
    with override_settings(AGENT_RUNS_QUEUE=queue_name), worker_thread(queue_name, django_db_blocker):
        yield queue_name
    # On a thread of its own: Playwright's sync API leaves this thread's event loop marked running.
    closer = threading.Thread(target=close_runtime)
    closer.start()
    closer.join()
