"""Headless Chromium for tests: the ``browser`` and ``page`` fixtures, ``screenshot`` and ``logged_in``.

Playwright drives Debian's Chromium at ``/usr/bin/chromium`` (``scripts/services.sh`` installs it);
Playwright's own browser builds are never downloaded. ``browser`` is one Chromium for the session;
``page`` is a fresh context and tab per test (1280x900, time zone from the ``browser_timezone``
fixture, UTC unless a test module overrides that fixture or parametrizes it). The ``page`` fixture
watches the page and, at teardown, errors the test if the page broke its Content-Security-Policy or
threw an uncaught exception, listing each one with the console errors beside it. tests/conftest.py
loads the fixtures as a plugin; a test module imports the helpers::

    import pytest
    from tests.support.browser import logged_in, screenshot

    pytestmark = pytest.mark.browser

    def test_it_shows_the_dashboard(page, live_server, django_user_model):
        django_user_model.objects.create_user("alice", password="alice-password")
        logged_in(page, live_server, "alice", "alice-password")
        screenshot(page, "dashboard")

(Importing the fixtures by name instead would need ``browser_timezone`` imported too, and ruff
flags each test argument that shadows an imported fixture as F811.) Browser tests are not marked
``embedded``: they run in the Postgres run of the suite.

``live_server`` (pytest-django) serves Django from a thread of this process, so fixtures and
monkeypatches apply to it, and it makes the test transactional: rows a test creates are committed and
the server sees them. Once the first browser test has started Chromium, ``DJANGO_ALLOW_ASYNC_UNSAFE``
stays on until the session ends (see the ``browser`` fixture). Screenshots go to
``artifacts/screenshots/`` (git ignores ``artifacts/``).

Violations are caught from real navigations only: ``page.set_content`` writes into the current
document, where Chromium blocks what the policy forbids but fires no ``securitypolicyviolation``
event. To check markup against a policy, serve it with ``page.route`` and ``page.goto``.

PYTEST_DONT_REWRITE: a helper, not a test module.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Error, Page, sync_playwright

from tests.support.paths import ARTIFACTS

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ARTIFACTS / "screenshots"
VIEWPORT = {"width": 1280, "height": 900}

# Runs in every document before the page's own scripts (the policy does not apply to it). The binding
# hands each violation to Python as it happens, so violations on pages the test has since left count too.
CSP_WATCH = """
window.__cspViolations = [];
window.addEventListener("securitypolicyviolation", (event) => {
    const violation = {
        directive: event.effectiveDirective,
        blocked: event.blockedURI,
        source: event.sourceFile,
        line: event.lineNumber,
        sample: event.sample,
        disposition: event.disposition,
    };
    window.__cspViolations.push(violation);
    window.__reportCspViolation(violation);
}, true);
"""


@dataclass
class Problems:
    """What went wrong in one browser context, collected as it happened."""

    csp_violations: list[dict] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def failure(self) -> str | None:
        """A report of the CSP violations and uncaught errors, or None when there were none."""
        if not self.csp_violations and not self.page_errors:
            return None
        lines = [f"CSP violation: {v}" for v in self.csp_violations]
        lines += [f"uncaught page error: {e}" for e in self.page_errors]
        lines += [f"console error: {e}" for e in self.console_errors]
        return "the page broke in the browser:\n  " + "\n  ".join(lines)


def watch(context: BrowserContext) -> Problems:
    """Collect CSP violations, uncaught errors and console errors from every page ``context`` opens."""
    problems = Problems()
    context.expose_binding("__reportCspViolation", lambda source, violation: problems.csp_violations.append(violation))
    context.add_init_script(CSP_WATCH)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.console_errors.append(f"{message.text} ({message.location.get('url', '')})")

    def on_page(page: Page) -> None:
        page.on("console", on_console)
        page.on("pageerror", lambda error: problems.page_errors.append(str(error)))

    context.on("page", on_page)
    return problems


def settle(page: Page) -> None:
    """Let the page run the tasks it has queued, so events about what it just did reach Python."""
    if page.is_closed():
        return
    try:
        page.evaluate("() => new Promise((resolve) => setTimeout(resolve, 50))")
    except Error:
        pass  # the page is navigating or gone; what it reported so far is what there is


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the session."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: run scripts/services.sh as root to install it")
    # Playwright's sync API keeps an asyncio loop running in this thread from start() to stop(), and
    # Django refuses ORM calls from a thread with a running loop (SynchronousOnlyOperation), which
    # would break the test's own set-up and the database flush after it. Nothing here is async: the
    # loop only carries Playwright's messages, so the check is switched off while Playwright runs.
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        # Playwright passes --no-sandbox to Chromium itself (its chromiumSandbox defaults to off),
        # which Chromium needs when it runs as root, as it does here and in CI.
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()
        if before is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture
def browser_timezone() -> str:
    """The time zone the page's clock runs in; override this fixture to test another."""
    return "UTC"


@contextlib.contextmanager
def watched_tab(browser: Browser, timezone_id: str = "UTC") -> Iterator[Page]:
    """A tab in a fresh context (another person's browser); fails the test when it is closed if the
    page broke its Content-Security-Policy or threw an uncaught error."""
    context = browser.new_context(viewport=VIEWPORT, timezone_id=timezone_id, locale="en-US")
    problems = watch(context)
    tab = context.new_page()
    yield tab
    settle(tab)
    context.close()
    report = problems.failure()
    if report:
        pytest.fail(report, pytrace=False)


@pytest.fixture
def page(browser: Browser, browser_timezone: str) -> Iterator[Page]:
    """A tab in a fresh context; the test errors at teardown on CSP violations or uncaught page errors."""
    with watched_tab(browser, browser_timezone) as tab:
        yield tab


@pytest.fixture
def cheap_passwords(settings) -> None:
    """The login form is under test, not PBKDF2: a fast hasher saves seconds per login. Modules
    use it with ``pytest.mark.usefixtures("cheap_passwords")``."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def screenshot(page: Page, name: str) -> Path:
    """Save the whole page as ``artifacts/screenshots/<name>.png`` and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


def logged_in(page: Page, live_server, username: str, password: str) -> Page:
    """Log in through the login form at /login/ and return the page, on the page the login led to."""
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    if page.url.split("?")[0].endswith("/login/"):
        pytest.fail(f"logging in as {username!r} failed: the login form came back", pytrace=False)
    return page
