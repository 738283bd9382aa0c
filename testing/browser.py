"""The browser suite's tools (tests/browser/, docs/browser-tests.md): Playwright
driving the system's chromium, axe-core in every page, screenshots on request.

Playwright never downloads a browser here: it launches Debian's `chromium`
(`executable_path`), and the suite is skipped when there is none. axe-core is
vendored (testing/vendor/axe-core/) and injected by an init script, so it is in
every document a context loads, whatever the page's own scripts do.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Locator, Page, sync_playwright

AXE_SCRIPT = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
# axe's impacts are minor, moderate, serious and critical; the last two fail a test.
BLOCKING_IMPACTS = frozenset({"serious", "critical"})
CHROMIUM_ENV = "AIAAS_CHROMIUM"
SCREENSHOTS_ENV = "AIAAS_SCREENSHOTS"
CHROMIUM_NAMES = ("chromium", "chromium-browser")
# Every host name reaches the test server (tenants live at <slug>.localhost, or under
# whatever BASE_DOMAIN says); nothing leaves the machine. CI runs as root, where
# chromium's sandbox cannot start, and containers have a small /dev/shm.
CHROMIUM_ARGS = ["--host-resolver-rules=MAP * 127.0.0.1", "--no-sandbox", "--disable-dev-shm-usage"]
NODES_SHOWN_PER_RULE = 5
SIDEWAYS_OVERFLOW_SCRIPT = """() => {
  const root = document.documentElement;
  if (root.scrollWidth <= root.clientWidth) return null;
  const clipped = (element) => {
    for (let up = element.parentElement; up && up !== document.body; up = up.parentElement) {
      if (getComputedStyle(up).overflowX !== "visible") return true;
    }
    return false;
  };
  const wide = [...document.body.querySelectorAll("*")].filter(
    (element) => element.getBoundingClientRect().right > root.clientWidth + 1 && !clipped(element));
  const innermost = wide.filter(
    (element) => !wide.some((other) => other !== element && element.contains(other)));
  const names = innermost.slice(0, 5).map((element) =>
    element.tagName.toLowerCase() + (element.id ? "#" + element.id : "")
    + [...element.classList].map((name) => "." + name).join(""));
  return `${root.scrollWidth} px wide; past the edge: ${names.join(", ")}`;
}"""


@dataclass(frozen=True)
class Viewport:
    name: str
    width: int
    height: int


DESKTOP = Viewport("desktop", 1280, 800)
MOBILE = Viewport("mobile", 390, 844)
VIEWPORTS = (DESKTOP, MOBILE)


def chromium_executable() -> str | None:
    """$AIAAS_CHROMIUM, else `chromium` on the PATH (Debian's package), else None."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        return configured if Path(configured).is_file() else None
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


@contextmanager
def launched_chromium(executable: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshots_directory() -> Path | None:
    """Where to save each audited page's screenshot ($AIAAS_SCREENSHOTS), if anywhere."""
    configured = os.environ.get(SCREENSHOTS_ENV)
    return Path(configured) if configured else None


def new_context(browser: Browser, viewport: Viewport) -> BrowserContext:
    context = browser.new_context(
        viewport={"width": viewport.width, "height": viewport.height},
        is_mobile=viewport is MOBILE,
        has_touch=viewport is MOBILE,
        locale="en-GB",
        timezone_id="UTC",
        reduced_motion="reduce",
    )
    context.add_init_script(path=AXE_SCRIPT)
    context.set_default_timeout(10_000)
    return context


def blocking_violations(page: Page) -> list[dict[str, Any]]:
    """axe's serious and critical violations on the page as it is now."""
    results: dict[str, Any] = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [violation for violation in results["violations"] if violation["impact"] in BLOCKING_IMPACTS]


def sideways_overflow(page: Page) -> str | None:
    """What sticks out past the window's right edge, if the page scrolls sideways
    (content cut off at a phone's width); what scrolls inside its own box is fine."""
    overflow: str | None = page.evaluate(SIDEWAYS_OVERFLOW_SCRIPT)
    return overflow


def describe(violations: list[dict[str, Any]]) -> str:
    """Each violated rule with its impact and help, and the nodes that break it."""
    lines = []
    for violation in violations:
        rule = f"{violation['id']} ({violation['impact']})"
        lines.append(f"{rule}: {violation['help']} [{violation['helpUrl']}]")
        nodes = violation["nodes"]
        for node in nodes[:NODES_SHOWN_PER_RULE]:
            summary = " ".join(str(node.get("failureSummary", "")).split())
            lines.append(f"  {json.dumps(node['target'])} {node['html'][:160]}\n    {summary[:300]}")
        if len(nodes) > NODES_SHOWN_PER_RULE:
            lines.append(f"  ...and {len(nodes) - NODES_SHOWN_PER_RULE} more")
    return "\n".join(lines)


@dataclass
class AuditedPage:
    """A page whose every loaded document must pass axe before the test ends.

    `audit(name)` runs axe on what the page shows now and fails on a serious or
    critical violation; `unaudited()` lists documents loaded since and never
    audited, which the fixture turns into a failure, so a step cannot skip it.
    """

    page: Page
    viewport: Viewport
    screenshots: Path | None = None
    loaded: list[str] = field(default_factory=list)
    audited: set[int] = field(default_factory=set)
    # What the Content-Security-Policy refused (chromium says so on the console).
    refused_by_policy: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("load", lambda page: self.loaded.append(page.url))
        self.page.on("console", self.note_policy_refusal)

    def note_policy_refusal(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.refused_by_policy.append(f"{self.page.url}: {message.text}")

    def goto(self, url: str) -> Page:
        """Open `url`, which must answer 200 (after redirects)."""
        response = self.page.goto(url)
        assert response is not None, url
        assert response.status == HTTPStatus.OK, f"{url}: {response.status}"
        return self.page

    def visit(self, url: str, name: str | None = None) -> Page:
        """Open `url` and audit it."""
        self.goto(url)
        self.audit(name)
        return self.page

    def audit(self, name: str | None = None, show: Locator | None = None) -> None:
        """Fail on axe's serious or critical violations in the current document, and
        on a page wider than the window."""
        violations = self.violations(name, show)
        assert not violations, f"axe on {self.page.url} ({self.viewport.name}):\n{describe(violations)}"
        overflow = sideways_overflow(self.page)
        assert overflow is None, f"{self.page.url} at {self.viewport.width} px: {overflow}"

    def violations(self, name: str | None = None, show: Locator | None = None) -> list[dict[str, Any]]:
        """axe's serious or critical violations in the current document, and a
        screenshot named `name` when screenshots are asked for (scrolled to `show`)."""
        self.page.wait_for_load_state("load")
        self.audited.update(range(len(self.loaded)))
        if name is not None and self.screenshots is not None:
            if show is not None:
                show.scroll_into_view_if_needed()
            self.screenshots.mkdir(parents=True, exist_ok=True)
            path = self.screenshots / f"{name}-{self.viewport.name}.png"
            self.page.screenshot(path=path, animations="disabled")
        return blocking_violations(self.page)

    def unaudited(self) -> list[str]:
        return [url for index, url in enumerate(self.loaded) if index not in self.audited]


OpenPage = Callable[[Viewport], AuditedPage]


def origin_of(host: str, platform_url: str) -> str:
    """`host` (a tenant's domain, or the public one) on the test server's port."""
    return f"http://{host}:{platform_url.rsplit(':', 1)[1]}"


def sign_in(page: AuditedPage, tenant_origin: str, email: str, password: str) -> None:
    """Through the login form, as a user would; waits for the dashboard, which the
    caller audits."""
    page.visit(f"{tenant_origin}/login/")
    page.page.get_by_label("Email").fill(email)
    page.page.get_by_label("Password").fill(password)
    page.page.get_by_role("button", name="Sign in").click()
    page.page.wait_for_url(f"{tenant_origin}/dashboard/**")
