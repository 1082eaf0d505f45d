"""Every page of the demo organization, looked at as a person would: ``make run``, then ``manage.py
demo`` beside it (as the README says), then each page at 1366 and at 390 px in headless Chromium.

For every page and width: a screenshot in ``artifacts/screenshots/pages/<page>-<width>.png``,
axe-core's violations (axe-playwright-python ships axe-core), and the document's width. The test
prints a line per page, and fails on any serious or critical violation, on a page wider than the
phone's screen, and on a page route of the app (tests/expected/routes.txt) it did not look at.
"""

import re
import subprocess
import sys
from dataclasses import dataclass

import pyotp
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import SCREENSHOTS, logged_in
from tests.support.dnsserver import DnsServer
from tests.support.makerun import App, services_env, started
from tests.support.paths import ROOT
from tests.support.smtpserver import SmtpServer

pytestmark = pytest.mark.browser

WIDTHS = (1366, 390)
SHOTS = SCREENSHOTS / "pages"
SERIOUS = ("serious", "critical")
# Every chart on the page drawn (plotly adds its SVG when it has): the page is as a person sees it.
CHARTS_DRAWN = "() => [...document.querySelectorAll('[data-figure]')].every((chart) => chart.querySelector('svg'))"
DOMAIN = "demo-shop.example"
ADMIN_EMAIL = "admin@demo-shop.example"
# Routes that are not pages a person looks at, and why.
NOT_PAGES = {
    "admin": "Django's admin, not the product",
    "favicon": "an icon",
    "healthz": "for load balancers",
    "metrics": "for Prometheus",
    "logout": "a POST",
    "org-get-started": "a POST from the home page",
    "org-domain-add": "a POST from the domains page",
    "org-switch": "a POST",
    "domain-delete": "a POST",
    "domain-claim": "a POST",
    "domain-report-address": "a POST",
    "domain-setup-check": "a POST",
    "inventory-mark": "a POST",
    "alert-acknowledge": "a POST",
    "alert-mute": "a POST",
    "replay": "a POST",
    "org-invite": "a POST",
    "org-invitation-revoke": "a POST",
    "org-member-remove": "a POST",
    "org-member-role": "a POST",
    "org-mailbox-delete": "a POST",
    "org-mailbox-test": "a POST",
    "org-token-create": "a POST",
    "org-token-revoke": "a POST",
    "org-channel-add": "a POST from the alert channels page",
    "org-channel-delete": "a POST",
    "org-channel-enable": "a POST",
    "org-channel-test": "a POST",
    "org-my-channel-add": "a POST from the personal alert channels page",
    "org-my-channel-delete": "a POST",
    "org-my-channel-enable": "a POST",
    "org-my-channel-test": "a POST",
    "export-dkim": "a CSV download",
    "export-reporters": "a CSV download",
    "export-senders": "a CSV download",
    "export-sources": "a CSV download",
    "export-report-records": "a CSV download",
    "report-raw": "an XML download",
    "export-tls": "a CSV download",
    "export-failures": "a CSV download",
    "failure-raw": "a text download (the failure report as it arrived)",
    "tlsrpt-receive": "where reporters POST TLS reports",
    "org-mailbox-oauth-connect": "a redirect to the OAuth provider (tests/browser/test_browser_oauth.py follows it)",
    "oauth-callback": "where the OAuth provider sends the browser back (tests/browser/test_browser_oauth.py)",
}
NOT_PAGES |= {f"policy-{action}": "a POST" for action in ("adopt", "check", "health", "move", "recompute", "settings")}
NOT_PAGES |= {f"mta-sts-{action}": "a POST" for action in ("adopt", "check", "move", "settings")}


def page_routes() -> set[str]:
    names = {line.split()[-1] for line in (ROOT / "tests/expected/routes.txt").read_text().splitlines() if line}
    return {name for name in names if name not in NOT_PAGES and not name.startswith("api-")}


@dataclass
class Look:
    route: str
    label: str
    width: int
    violations: list[tuple[str, str, int]]  # (rule, impact, nodes), serious or critical only
    minor: int  # nodes with a moderate or minor violation (printed, not failed on)
    document_width: int


class Sweep:
    """Looks at the page a tab is on, at each width, and keeps what it found."""

    def __init__(self) -> None:
        self.axe = Axe()
        self.looks: list[Look] = []
        SHOTS.mkdir(parents=True, exist_ok=True)

    def look(self, page: Page, route: str, label: str = "") -> None:
        label = label or route
        for index, width in enumerate(WIDTHS):
            page.set_viewport_size({"width": width, "height": 900})
            if index:
                page.reload()  # laid out from the start at this width, charts included
            page.wait_for_load_state("load")
            page.wait_for_function(CHARTS_DRAWN)
            page.screenshot(path=SHOTS / f"{label}-{width}.png", full_page=True)
            found = [
                (violation["id"], violation["impact"], len(violation["nodes"]))
                for violation in self.axe.run(page).response["violations"]
            ]
            violations = [item for item in found if item[1] in SERIOUS]
            minor = sum(nodes for _, impact, nodes in found if impact not in SERIOUS)
            document_width = page.evaluate("document.documentElement.scrollWidth")
            self.looks.append(Look(route, label, width, violations, minor, document_width))
        page.set_viewport_size({"width": WIDTHS[0], "height": 900})

    def report(self) -> str:
        lines = [f"{'page':<26} {'width':>5} {'serious/critical':>16} {'moderate/minor':>14} {'doc width':>9}"]
        for look in self.looks:
            found = sum(nodes for _, _, nodes in look.violations)
            detail = " ".join(f"{rule}({impact}, {nodes})" for rule, impact, nodes in look.violations)
            lines.append(
                f"{look.label:<26} {look.width:>5} {found:>16} {look.minor:>14} {look.document_width:>9}  {detail}"
            )
        return "\n".join(lines)


@pytest.fixture(scope="module")
def demo_app(tmp_path_factory):
    """make run on an empty data directory, with ``manage.py demo`` run beside it while its poll
    loop works; yields the app, the demo's exit code and output, and the SMTP listener."""
    dns, smtp = DnsServer().start(), SmtpServer().start()
    try:
        with started("every-page", tmp_path_factory.mktemp("every-page") / "data", services_env(dns, smtp)) as app:
            demo = subprocess.run(
                [sys.executable, "manage.py", "demo"], cwd=ROOT, env=app.env, capture_output=True, text=True,
                timeout=900,
            )  # fmt: skip
            yield app, demo, smtp
    finally:
        smtp.stop()
        dns.stop()


def test_the_demo_loads_completely_while_make_run_polls_beside_it(demo_app, capsys):
    app, demo, _ = demo_app
    with capsys.disabled():
        print("\nmanage.py demo beside make run: exit", demo.returncode, "\n" + demo.stdout)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    counts = re.search(r"(\d+) reports: (\d+) stored, (\d+) duplicates \(loaded before\), (\d+) refused", demo.stdout)
    assert counts, demo.stdout
    reports, stored, duplicates, refused = map(int, counts.groups())
    assert (stored, duplicates, refused) == (reports, 0, 0)
    assert app.query("SELECT count(*) FROM reports_report")[0][0] == reports
    tls = re.search(r"(\d+) SMTP TLS reports for \S+ \(30 days\): (\d+) stored, 0 duplicates, 0 refused", demo.stdout)
    assert tls and tls.group(1) == tls.group(2), demo.stdout
    assert app.query("SELECT count(*) FROM reports_tlsreport")[0][0] == int(tls.group(1))
    assert not app.query("SELECT id, error FROM reports_intake WHERE status = 'failed'")
    assert f"Next: open {app.url}/ and log in as admin" in demo.stdout
    assert app.process.poll() is None  # make run (its loop and server) still running


def link_in(smtp: SmtpServer, count: int, pattern: str) -> str:
    text = smtp.wait_for(count, timeout=30)[count - 1].message.get_body(("plain",)).get_content()
    found = re.search(pattern, text)
    assert found, text
    return found.group(0)


def test_every_page_has_no_serious_accessibility_violation_and_fits_a_phone(demo_app, browser: Browser, capsys):
    app, _, smtp = demo_app
    sweep = Sweep()
    context = browser.new_context(locale="en-US", timezone_id="Europe/Oslo")
    anonymous = browser.new_context(locale="en-US", timezone_id="Europe/Oslo")
    try:
        visit_every_page(sweep, app, smtp, context.new_page(), anonymous.new_page())
    finally:
        context.close()
        anonymous.close()
    with capsys.disabled():
        print("\naxe-core and page width, every page of the demo organization:\n" + sweep.report())
    bad = [look for look in sweep.looks if look.violations]
    assert not bad, "serious or critical axe-core violations:\n" + sweep.report()
    wide = [look for look in sweep.looks if look.document_width > look.width]
    assert not wide, "pages wider than the screen:\n" + sweep.report()
    missed = page_routes() - {look.route for look in sweep.looks}
    assert not missed, f"page routes nobody looked at: {sorted(missed)}"


def visit_every_page(sweep: Sweep, app: App, smtp: SmtpServer, page: Page, outside: Page) -> None:
    # Signed out.
    outside.goto(f"{app.url}/login/")
    sweep.look(outside, "login")

    # The demo organization's pages, signed in as the first account (the demo made it an owner).
    logged_in(page, app, app.username, app.password)
    sweep.look(page, "home")
    for route, path in (
        ("domain", ""),
        ("domain-sources", "sources/"),
        ("domain-senders", "senders/"),
        ("domain-reporters", "reporters/"),
        ("domain-dkim", "dkim/"),
        ("policy", "policy/"),
        ("domain-tls", "tls/"),
        ("domain-failures", "failures/"),
        ("mta-sts", "mta-sts/"),
        ("domain-setup", "setup/"),
    ):
        page.goto(f"{app.url}/domains/{DOMAIN}/{path}")
        sweep.look(page, route)
    page.goto(f"{app.url}/domains/{DOMAIN}/sources/?sort=-failing")
    page.locator("#sources tbody td.ip a").first.click()
    sweep.look(page, "source")
    page.goto(f"{app.url}/domains/{DOMAIN}/senders/")
    page.locator(f"main table a[href^='/domains/{DOMAIN}/senders/']").first.click()
    sweep.look(page, "sender")
    page.goto(f"{app.url}/domains/{DOMAIN}/tls/")
    page.locator(f"main table a[href^='/domains/{DOMAIN}/tls-reports/']").first.click()
    sweep.look(page, "tls-report")
    # Failure samples (reports/management/demofailures.py sends them through the real ingest): the
    # newest sample, then the source with the most samples, whose page lists them.
    page.goto(f"{app.url}/domains/{DOMAIN}/failures/")
    page.locator(f"#failure-samples a[href^='/domains/{DOMAIN}/failures/']").first.click()
    expect(page.locator("#sample-headers")).to_be_visible()
    sweep.look(page, "failure-sample")
    page.goto(f"{app.url}/domains/{DOMAIN}/failures/")
    page.locator(f"#failure-sources a[href^='/domains/{DOMAIN}/sources/']").first.click()
    expect(page.locator("#failure-samples")).to_be_visible()
    sweep.look(page, "source", "source-failure-samples")
    page.goto(f"{app.url}/reports/")
    sweep.look(page, "report-list")
    page.locator("main table a[href^='/reports/']").first.click()
    sweep.look(page, "report")
    for route, path in (("ingestion", "/ingestion/"), ("upload", "/upload/"), ("alerts", "/alerts/")):
        page.goto(f"{app.url}{path}")
        sweep.look(page, route)

    # The account: an email address (for the password reset below), the password, two-factor.
    page.goto(f"{app.url}/account/")
    page.get_by_label("Email:", exact=True).fill(ADMIN_EMAIL)
    page.get_by_role("button", name="Save").click()
    sweep.look(page, "account")
    page.goto(f"{app.url}/account/password/")
    sweep.look(page, "password-change")
    for field in ("#id_old_password", "#id_new_password1", "#id_new_password2"):
        page.locator(field).fill(app.password)
    page.get_by_role("button", name="Change the password").click()
    sweep.look(page, "password-change-done")

    # The organization's pages.
    organization = f"{app.url}/orgs/demo"
    for route, path in (
        ("org-domains", "domains/"),
        ("org-members", "members/"),
        ("org-mailboxes", "mailboxes/"),
        ("org-tokens", "tokens/"),
        ("org-channels", "channels/"),
        ("org-my-channels", "channels/mine/"),
        ("org-settings", "settings/"),
        ("org-audit", "audit/"),
    ):
        page.goto(f"{organization}/{path}")
        sweep.look(page, route)
    page.goto(f"{organization}/mailboxes/add/")
    sweep.look(page, "org-mailbox-add")
    page.locator("#id_name").fill("rua")
    page.locator("#id_host").fill("imap.demo-shop.example")
    page.locator("#id_username").fill("dmarc@demo-shop.example")
    page.locator("#id_password").fill("an imap password")
    page.get_by_role("button", name="Add").click()
    expect(page.locator("#mailbox-state")).to_be_visible()
    sweep.look(page, "org-mailbox")
    page.goto(f"{app.url}/orgs/new/")
    sweep.look(page, "org-new")

    # An invitation, as its link opens for someone signed out and for someone signed in.
    page.goto(f"{organization}/members/")
    page.locator("#invite").get_by_label("Email").fill("carol@demo-shop.example")
    page.locator("#invite").get_by_role("button", name="Send invitation").click()
    link = link_in(smtp, 1, r"http://\S+/invitations/\S+/")
    outside.goto(link)
    sweep.look(outside, "invitation")
    page.goto(link)
    sweep.look(page, "invitation", "invitation-signed-in")

    # Two-factor: off, turned on with a code from the secret shown, then the pages it adds.
    page.goto(f"{app.url}/account/two-factor/")
    sweep.look(page, "two-factor", "two-factor-off")
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")  # shown in groups of four
    page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn two-factor on").click()
    expect(page.get_by_role("button", name="Turn two-factor off")).to_be_visible()
    sweep.look(page, "two-factor")
    page.goto(f"{app.url}/account/two-factor/disable/")
    sweep.look(page, "two-factor-disable")
    outside.goto(f"{app.url}/login/")
    outside.get_by_label("Username").fill(app.username)
    outside.get_by_label("Password").fill(app.password)
    outside.get_by_role("button", name="Log in").click()
    expect(outside).to_have_url(re.compile(r"/login/two-factor/"))
    sweep.look(outside, "login-two-factor")

    # A password reset, from the form to the new password (the same one again).
    outside.context.clear_cookies()
    outside.goto(f"{app.url}/password/reset/")
    sweep.look(outside, "password-reset")
    outside.get_by_label("Email").fill(ADMIN_EMAIL)
    outside.get_by_role("button", name="Send the link").click()
    sweep.look(outside, "password-reset-done")
    outside.goto(link_in(smtp, 2, r"http://\S+/password/reset/\S+/\S+/"))
    sweep.look(outside, "password-reset-confirm")
    for field in ("#id_new_password1", "#id_new_password2"):
        outside.locator(field).fill(app.password)
    outside.get_by_role("button", name="Set the password").click()
    sweep.look(outside, "password-reset-complete")
