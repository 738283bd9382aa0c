"""A new user's first hour, in a real browser at desktop and phone widths: signup,
a first key, a streamed playground answer, the usage chart, an agent run, the
request log and the plans. Every page is audited by axe (testing/browser.py);
each step checks what the user sees, not what the database holds."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.core import mail
from django_tenants.utils import tenant_context
from playwright.sync_api import Locator, Page, WebSocket, expect

from accounts.throttling import SIGNUPS, SIGNUPS_PER_IP
from analytics.rollups import apply_rollups
from billing.models import Plan, UsageEvent
from billing.usage import flush_usage_events
from request_logs.models import RequestLog
from request_logs.services import flush_request_logs
from tenants.models import Tenant
from tenants.services import SIGNUP_SCOPE
from testing.browser import MOBILE, VIEWPORTS, AuditedPage, OpenPage, Viewport, origin_of
from testing.database import committed

SETTLE_SECONDS = 5.0
PASSWORD = "a-long-and-unusual-passphrase"
KEY_NAME = "Journey key"
PLAYGROUND_PROMPT = "Tell me about multi-tenant platforms."
AGENT_SPEC = """\
name: greeter
input_schema:
  type: object
  properties:
    text: {type: string, title: Who to greet}
  required: [text]
steps:
  - id: answer
    kind: llm
    model: auto
    prompt: "Say hello to {{ input.text }}"
"""


@dataclass(frozen=True)
class Workspace:
    slug: str
    origin: str


@pytest.fixture(autouse=True)
def _fresh_signup_throttles() -> None:
    """Signup counts live in Redis, which no test rolls back."""
    SIGNUPS.reset(SIGNUP_SCOPE, "all")
    SIGNUPS_PER_IP.reset(SIGNUP_SCOPE, "127.0.0.1")


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=lambda viewport: viewport.name)
def test_a_new_user_signs_up_then_calls_models_runs_an_agent_and_sees_the_bill(
    open_page: OpenPage,
    gateway: str,
    platform_url: str,
    runs_worker: str,
    viewport: Viewport,
) -> None:
    page = open_page(viewport)

    workspace = sign_up(page, platform_url, slug=f"journey-{viewport.name}")
    create_first_key(page, workspace)
    turn_on_request_logging(page, workspace)
    stream_in_the_playground(page, workspace)
    see_the_usage_chart(page, workspace)
    run_an_agent(page, workspace)
    find_the_request_log(page, workspace)
    compare_plans(page, workspace)


def sign_up(page: AuditedPage, platform_url: str, slug: str) -> Workspace:
    """Signup lands signed in on the new workspace, its checklist untouched; the
    emailed link confirms the address."""
    email = f"founder@{slug}.example"
    browser = page.visit(origin_of(settings.BASE_DOMAIN, platform_url) + "/", "signup")
    browser.get_by_label("Company name").fill(f"{slug.title()} Ltd")
    browser.get_by_label("Subdomain").fill(slug)
    browser.get_by_label("Work email").fill(email)
    browser.get_by_label("Password", exact=True).fill(PASSWORD)
    browser.get_by_label("Confirm password").fill(PASSWORD)
    browser.get_by_role("button", name="Create workspace").click()

    browser.wait_for_url(re.compile(rf"^http://{slug}\.[^/]+/dashboard/$"))
    expect(browser.locator("#first-run-progress")).to_have_text("0 of 3 done")
    page.audit("overview")
    workspace = Workspace(slug=slug, origin=browser.url.removesuffix("/dashboard/"))
    [message] = mail.outbox
    link = re.search(r"^(http://\S+/verify-email/\S+/)$", str(message.body), re.MULTILINE)
    assert link is not None, message.body
    page.visit(link[1])
    expect(browser.get_by_text("Your email address is confirmed.")).to_be_visible()
    return workspace


def create_first_key(page: AuditedPage, workspace: Workspace) -> None:
    """The secret is shown once: reloading the page neither shows it nor makes a second key."""
    browser = page.visit(f"{workspace.origin}/dashboard/keys/")
    form = browser.locator("#create-key-form")
    form.get_by_label("Name").fill(KEY_NAME)
    form.get_by_role("button", name="Create key").click()

    secret = browser.locator("#new-secret")
    expect(secret).to_have_text(re.compile(r"^\S{32,}$"))
    shown = secret.inner_text()
    page.audit("keys")
    browser.reload()
    page.audit()
    expect(browser.locator("#new-secret")).to_have_count(0)
    expect(browser.locator("#keys-table tbody tr")).to_have_count(1)
    expect(browser.locator("#keys-table")).to_contain_text(KEY_NAME)
    assert shown not in browser.content(), "the secret is shown only once"


def turn_on_request_logging(page: AuditedPage, workspace: Workspace) -> None:
    browser = page.visit(f"{workspace.origin}/dashboard/request-logs/")
    expect(browser.get_by_role("heading", name="Request logging is off")).to_be_visible()
    browser.get_by_label("Store prompts and answers").check()
    browser.get_by_role("button", name="Save logging settings").click()

    expect(browser.locator("#logging-state")).to_have_text("on")
    expect(browser.get_by_role("heading", name="No requests logged yet")).to_be_visible()
    page.audit()


def stream_in_the_playground(page: AuditedPage, workspace: Workspace) -> None:
    browser = page.visit(f"{workspace.origin}/dashboard/playground/")
    chunks: list[str] = []
    browser.on("websocket", lambda socket: record_chunks(socket, chunks))
    choose(browser.get_by_label("Key"), KEY_NAME)
    browser.get_by_label("Message").fill(PLAYGROUND_PROMPT)
    browser.get_by_role("button", name="Send").click()

    expect(browser.locator("#playground-status-a")).to_have_text("Done.")
    answer = browser.locator("#playground-turns-a .playground-turn").last
    assert chunks, "no chunk frame arrived on the socket"
    expect(answer.locator(".playground-text")).to_have_text("".join(chunks))
    for fact in ("latency", "ttft", "cost"):
        expect(answer.locator(f'[data-fact="{fact}"]')).not_to_be_empty()
    page.audit("playground", show=answer)


def choose(select: Locator, text: str) -> None:
    """The option whose label contains `text` (labels carry ids and prefixes besides)."""
    select.select_option(select.locator("option", has_text=text).get_attribute("value"))


def record_chunks(socket: WebSocket, chunks: list[str]) -> None:
    def on_frame(payload: str | bytes) -> None:
        message = json.loads(payload)
        if message.get("type") == "chunk":
            chunks.append(message["delta"])

    socket.on("framereceived", on_frame)


def see_the_usage_chart(page: AuditedPage, workspace: Workspace) -> None:
    flush_until_ledgered(workspace, requests=1, logged=1)
    browser = page.visit(f"{workspace.origin}/dashboard/usage/")
    expect(browser.locator("#total-requests")).to_have_text("1")
    chart = browser.locator("figure.chart").first
    expect(chart.locator(".chart-plot canvas")).to_be_visible()
    assert painted_pixels(browser, chart.get_attribute("id") or "") > 0, "the chart canvas is blank"
    page.audit("usage", show=chart)


def flush_until_ledgered(workspace: Workspace, requests: int, logged: int = 0) -> None:
    """What the platform's flushers and the analytics worker do every few seconds,
    done now (and committed, for the server to see), once the workspace's requests
    are queued: a stream settles just after its last chunk is sent, so the
    browser may show the answer first."""

    def flush() -> None:
        tenant = Tenant.objects.get(slug=workspace.slug)
        deadline = time.monotonic() + SETTLE_SECONDS
        while (found := ledgered(tenant))[0] < requests or found[1] < logged:
            assert time.monotonic() < deadline, f"{workspace.slug}: ledgered and logged {found}"
            flush_usage_events()
            flush_request_logs()
            time.sleep(0.05)
        apply_rollups()

    committed(flush)


def ledgered(tenant: Tenant) -> tuple[int, int]:
    """The tenant's requests in the ledger, and in its request logs."""
    with tenant_context(tenant):
        return UsageEvent.objects.filter(tenant=tenant).count(), RequestLog.objects.count()


def painted_pixels(browser: Page, figure_id: str) -> int:
    return int(
        browser.evaluate(
            """(id) => {
              const canvas = document.getElementById(id).querySelector(".chart-plot canvas");
              const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
              let painted = 0;
              for (let alpha = 3; alpha < pixels.length; alpha += 4) if (pixels[alpha]) painted += 1;
              return painted;
            }""",
            figure_id,
        )
    )


def run_an_agent(page: AuditedPage, workspace: Workspace) -> None:
    """The run form is drawn from the spec's input_schema with the only key chosen;
    the run page follows the run to `succeeded` and draws its step."""
    browser = page.visit(f"{workspace.origin}/dashboard/agents/new/")
    browser.get_by_label("Spec").fill(AGENT_SPEC)
    browser.get_by_role("button", name="Create agent").click()
    expect(browser.get_by_role("heading", name=re.compile("greeter"))).to_be_visible()
    page.audit()
    form = browser.locator("#start-run-form")
    expect(form.get_by_label("API key").locator("option:checked")).to_contain_text(KEY_NAME)
    form.get_by_label("Who to greet").fill("the browser suite")
    form.get_by_role("button", name="Run", exact=True).click()

    expect(browser.locator("#run-status")).to_have_text("succeeded", timeout=20_000)
    expect(browser.locator("#run-events")).to_have_attribute("data-live", "0")
    expect(browser.locator('#run-steps [data-step="answer"]')).to_contain_text("Succeeded")
    # The events' JSON keeps a readable width (the table scrolls), not one character per line.
    widths = browser.locator("#run-events td pre").evaluate_all(
        "cells => cells.map(cell => cell.getBoundingClientRect().width)"
    )
    assert widths
    assert min(widths) >= 150, widths
    page.audit("agent-run", show=browser.locator("#run-steps"))


def find_the_request_log(page: AuditedPage, workspace: Workspace) -> None:
    flush_until_ledgered(workspace, requests=2, logged=2)  # the playground's and the agent's
    browser = page.visit(f"{workspace.origin}/dashboard/request-logs/")
    rows = browser.locator("#request-logs-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text(KEY_NAME)
    page.audit("request-logs")
    rows.last.get_by_role("link", name=re.compile("Details")).click()

    drawer = browser.get_by_role("dialog")
    expect(drawer.locator("#log-messages")).to_contain_text(PLAYGROUND_PROMPT)
    expect(drawer.locator("#log-answer")).not_to_be_empty()
    page.audit("request-log", show=drawer.locator("#log-answer"))
    drawer.get_by_role("button", name="Close").click()
    expect(drawer).to_be_hidden()


def compare_plans(page: AuditedPage, workspace: Workspace) -> None:
    """Reached through the navigation (the menu button at a phone's width): every
    plan side by side, ours marked, and why each cannot be bought here."""
    browser = page.page
    if page.viewport is MOBILE:
        browser.get_by_role("button", name="Menu").click()
    browser.get_by_role("navigation", name="Dashboard").get_by_role("link", name="Billing").click()
    browser.wait_for_url(f"{workspace.origin}/dashboard/billing/")

    cards = browser.locator("#plan-cards > li")
    expect(cards).to_have_count(Plan.objects.count())
    expect(browser.locator("#plan-cards .plan-current")).to_contain_text("Your plan")
    for card in cards.all():
        expect(card.locator(".plan-price")).to_contain_text("a month")
        expect(card.locator(".plan-unavailable")).not_to_be_empty()
    page.audit("billing", show=browser.locator("#plan-cards"))
