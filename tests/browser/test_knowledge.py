"""A knowledge collection's page in a browser, as the issue describes it: a file
dropped on the page is uploaded, its progress bar fills live from the document's
realtime stream while a real worker ingests it, and a search marks the query's
words in its results; axe passes at each step. The worker starts only once the
page follows the stream, so every event reaches it on the socket."""

from __future__ import annotations

import os
import re

from django.test import override_settings
from playwright.sync_api import expect
from pytest_django import DjangoDbBlocker

from ingestion.tests.factories import make_stored_collection
from testing.browser import VIEWPORTS, OpenPage, origin_of, sign_in
from testing.celery import worker_thread
from testing.database import committed
from testing.tenants import TEST_PASSWORD, TenantFixture

HERONS = "\n\n".join(
    f"## Marsh {n}\n\nHerons wade through the shallow marsh at dawn and spear fish number {n}."
    for n in range(40)
)
DROP_SCRIPT = """(text) => {
  const files = new DataTransfer();
  files.items.add(new File([text], "herons.md", {type: "text/markdown"}));
  return files;
}"""


def test_a_dropped_file_fills_its_progress_bar_live_then_is_found_with_marked_words(
    open_page: OpenPage,
    serving_tenant: TenantFixture,
    platform_url: str,
    registry: str,
    django_db_blocker: DjangoDbBlocker,
) -> None:
    queue_name = f"test-browser-ingestion-{os.getpid()}"
    with django_db_blocker.unblock():
        collection = committed(lambda: make_stored_collection(serving_tenant))
    page = open_page(VIEWPORTS[0])
    tenant_origin = origin_of(serving_tenant.host, platform_url)
    sign_in(page, tenant_origin, serving_tenant.owner_email, TEST_PASSWORD)
    browser = page.visit(f"{tenant_origin}/dashboard/knowledge/{collection.pk}/")
    key = str(serving_tenant.provisioned.issued_key.api_key.pk)

    with override_settings(INGESTION_QUEUE=queue_name):
        dropzone = browser.locator("#dropzone")
        dropzone.locator("select[name=api_key]").select_option(key)
        with browser.expect_websocket(lambda socket: "/ws/v1/streams/ingest_" in socket.url) as opened:
            dropzone.dispatch_event("drop", {"dataTransfer": browser.evaluate_handle(DROP_SCRIPT, HERONS)})
        frames: list[str] = []
        opened.value.on("framereceived", lambda payload: frames.append(str(payload)))
        row = browser.locator("#documents tr[data-document]")
        expect(row).to_have_attribute("data-status", "queued")
        page.audit("knowledge-collection")
        with worker_thread(queue_name, django_db_blocker):
            expect(row).to_have_attribute("data-status", "ready", timeout=30_000)

    assert any("ingestion.ready" in frame for frame in frames), frames
    value, maximum = row.locator("[data-field=progress]").evaluate("bar => [bar.value, bar.max]")
    assert value == maximum > 1
    expect(row.locator("[data-field=counts]")).to_have_text(f"{maximum}/{maximum}")
    search = browser.locator("form[method=get]")
    search.get_by_label("Query").fill("herons marsh")
    search.locator("select[name=api_key]").select_option(key)
    search.get_by_role("button", name="Search").click()
    browser.wait_for_url(re.compile(r"[?]q=herons"))
    page.audit("knowledge-search")
    marked = browser.locator("#results mark")
    expect(marked.first).to_be_visible()
    assert {text.lower() for text in marked.all_inner_texts()} >= {"herons", "marsh"}
