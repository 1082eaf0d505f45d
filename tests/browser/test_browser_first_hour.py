"""The first hour, as a new postmaster lives it: ``make run`` on an empty data directory, then only
the browser, never a page under /admin/, from the printed password to a domain in quarantine
testing mode and an alert email at the address set on the account.

``make run`` runs for real (tests/support/makerun): migrate, bootstrap, the poll loop and runserver
on SQLite, looking names up in the test's DNS server and sending mail to its SMTP listener. The
test publishes DNS records in that server the way a person edits their zone, and waits for the
poll loop the way a person waits: by reloading the page.
"""

import re
import time

import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import screenshot
from tests.support.builders import gzipped, record_xml, report_email, report_xml
from tests.support.dovecot import append_messages
from tests.support.ingest import midnight
from tests.support.makerun import App, started
from tests.support.rollout import publish

pytestmark = pytest.mark.browser

RUA = "dmarc@example.com"
OWNER_EMAIL = "postmaster@acme.example"
OWN_SERVER, CRM, ESP, SPOOFER, NEW_SPOOFER = "192.0.2.10", "192.0.2.20", "198.51.100.21", "203.0.113.66", "198.18.7.7"
# One day of example.com's mail as a large receiver reports it: the own server passing, the CRM in
# the same network failing both (its own Return-Path, no signature), SendGrid passing by DKIM, and
# someone else sending as the domain.
DAY = [
    record_xml(ip=OWN_SERVER, count=120, dkim_auth=(("example.com", "s2026", "pass"),)),
    record_xml(
        ip=CRM, count=12, dkim="fail", spf="fail", envelope_from="crm-mailer.example", dkim_auth=(),
        spf_auth=(("crm-mailer.example", "mfrom", "pass"),),
    ),
    record_xml(
        ip=ESP, count=30, spf="fail", envelope_from="bounces.sendgrid.net",
        dkim_auth=(("example.com", "s1", "pass"),), spf_auth=(("bounces.sendgrid.net", "mfrom", "pass"),),
    ),
    record_xml(
        ip=SPOOFER, count=6, dkim="fail", spf="fail", envelope_from="spoofer.example",
        dkim_auth=(("spoofer.example", "x", "pass"),), spf_auth=(("spoofer.example", "mfrom", "pass"),),
    ),
]  # fmt: skip
WEEK_MESSAGES = 7 * 2 * (120 + 12 + 30 + 6)


def report_of(reporter: str, days_ago: int, records: list[str] = DAY) -> tuple[str, bytes]:
    """A reporter's report for one whole UTC day: its file name and gzipped XML."""
    begin = midnight(days_ago)
    xml = report_xml(
        records, org_name=reporter, email=f"noreply-dmarc@{reporter}", report_id=f"{reporter}-{begin}",
        begin=begin, end=begin + 86399,
    )  # fmt: skip
    return f"{reporter}!example.com!{begin}!{begin + 86399}.xml.gz", gzipped(xml)


def as_files(reports: list[tuple[str, bytes]]) -> list[dict]:
    """Reports as the file input takes them (as if picked from the disk)."""
    return [{"name": name, "mimeType": "application/gzip", "buffer": data} for name, data in reports]


def week_of_reports() -> list[tuple[str, bytes]]:
    return [report_of(reporter, days_ago) for days_ago in range(7, 0, -1) for reporter in ("google.com", "outlook.com")]


@pytest.fixture
def app_env(dns_server, smtp_server) -> dict[str, str]:
    """What the operator's environment points at: the test's DNS server and SMTP listener."""
    return {
        "DNS_RESOLVER": f"127.0.0.1:{dns_server.port}",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_server.port),
    }


def never_admin(page: Page) -> list[str]:
    """Every URL the browser asks for under /admin/ (the test ends asserting there was none)."""
    seen: list[str] = []
    page.context.on("request", lambda request: seen.append(request.url) if "/admin/" in request.url else None)
    return seen


def log_in(page: Page, app: App) -> None:
    page.goto(app.url)
    expect(page).to_have_url(re.compile(r"/login/"))
    page.get_by_label("Username").fill(app.username)
    page.get_by_label("Password").fill(app.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#get-started")).to_be_visible()


def get_started(page: Page) -> None:
    """Name the organization and add example.com from the home page; land on its set-up page."""
    page.get_by_label("Name your organization").fill("Acme Mail")
    page.get_by_label("Add the domain whose DMARC reports you want to see").fill("example.com")
    page.get_by_role("button", name="Add domain").click()
    expect(page).to_have_url(re.compile(r"/domains/example\.com/setup/$"))


def reload_until(page: Page, locator, text: str, what: str, app: App, tries: int = 90) -> None:
    """Reload until ``locator`` holds ``text`` (the poll loop has caught up), as a person would."""
    for _ in range(tries):
        if locator.count() and text in locator.first.inner_text():
            return
        page.wait_for_timeout(1000)
        page.reload()
    raise AssertionError(f"{what}: {text!r} never appeared; make run said:\n{app.output()[-3000:]}")


def test_from_make_run_to_quarantine_testing_and_an_alert_email(page, tmp_path, app_env, dns_server, smtp_server):
    admin_requests = never_admin(page)
    with started("first-hour-upload", tmp_path / "data", app_env) as app:
        # 1. The printed password logs in; the home page asks for the organization and a domain.
        log_in(page, app)
        screenshot(page, "first-hour-1-get-started")
        get_started(page)

        # 2. The set-up page asks where reports go, then shows the record with that rua=.
        expect(page.locator("#no-record")).to_be_visible()
        page.get_by_label("Report address").fill(RUA)
        page.get_by_role("button", name="Save").click()
        record = f"v=DMARC1; p=none; rua=mailto:{RUA}"
        expect(page.locator("#record-value")).to_have_text(record)
        expect(page.locator("#no-mailbox")).to_contain_text("add that mailbox")  # no IMAP_URL here: upload
        screenshot(page, "first-hour-2-setup")

        # 3. The record goes into DNS; the check says reports will come here.
        dns_server.add("_dmarc.example.com", "TXT", f'"{record}"')
        page.locator("#check").click()
        expect(page.locator("#rua-status")).to_have_text(f"Reports are sent to {RUA}.")

        # 4. The account page: the bootstrap account has no email; set one and ask for alerts.
        page.get_by_role("link", name=app.username, exact=True).click()
        expect(page.locator("#no-email")).to_be_visible()
        page.get_by_label("Email:", exact=True).fill(OWNER_EMAIL)
        page.get_by_label("Email me alerts about Acme Mail's domains").check()
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_label("Email:", exact=True)).to_have_value(OWNER_EMAIL)

        # 5. A week of reports from two receivers, uploaded at once.
        page.get_by_role("link", name="Upload", exact=True).click()
        page.locator("input[type=file]").set_input_files(as_files(week_of_reports()))
        page.get_by_role("button", name="Upload").click()
        statuses = page.locator("main table tbody tr td:nth-child(3)")
        expect(statuses).to_have_count(14)
        assert set(statuses.all_inner_texts()) == {"stored"}
        # The poll loop looks at the new reports: what fails now is known, not news, from here on.
        app.wait_until(
            "the poll loop's first alert run (the baseline)",
            lambda: app.query("SELECT 1 FROM reports_domain WHERE name = 'example.com' AND alerts_since IS NOT NULL"),
        )

        # 6. Each failing source says why it fails; SendGrid is named once the loop looked it up.
        page.get_by_role("link", name="Domains", exact=True).click()
        page.get_by_role("link", name="example.com", exact=True).click()
        expect(page.locator("main")).to_contain_text(f"{WEEK_MESSAGES:,}")
        page.locator("nav.tabs").get_by_role("link", name="Sources").click()
        reload_until(page, page.locator("#sources"), "Twilio SendGrid", "the poll loop naming SendGrid", app)
        failing = page.locator("#sources tbody tr").filter(has=page.locator("td.num.bad"))
        expect(failing).to_have_count(2)
        expect(failing.locator("details.verdict")).to_have_count(2)
        expect(row(page, SPOOFER).locator("details.verdict summary")).to_contain_text("Not authorised: likely spoofing")
        expect(row(page, CRM).locator("details.verdict summary")).to_contain_text("Not authorised: likely spoofing")
        screenshot(page, "first-hour-3-sources")

        # 7. The domain's own senders, authorised from the table: the network of the own servers
        #    (one click covers the CRM too, which then reads as a misconfigured sender) and SendGrid.
        row(page, OWN_SERVER).get_by_role("button", name="Authorise 192.0.2.0/24").click()
        expect(page.locator("#undo")).to_be_visible()
        expect(row(page, OWN_SERVER).locator(".standing")).to_have_text("authorised")
        expect(row(page, CRM).locator("details.verdict summary")).to_contain_text(
            "Your sender, misconfigured (DKIM and SPF)"
        )
        row(page, ESP).get_by_role("button", name="Authorise Twilio SendGrid").click()
        expect(row(page, ESP).locator(".standing")).to_have_text("authorised")
        expect(row(page, SPOOFER).get_by_role("button", name="Authorise 203.0.113.0/24")).to_be_visible()

        # 8. The Policy tab: S1 now; publish the next stage's record, check DNS, move to S2.
        page.locator("nav.tabs").get_by_role("link", name="Policy").click()
        expect(page.locator("#current-stage")).to_have_text("S1 Monitor")
        expect(page.locator("#advance")).to_be_disabled()
        testing = page.locator("#record-value").inner_text()
        assert testing == f"v=DMARC1; p=quarantine; t=y; pct=0; rua=mailto:{RUA}"
        publish(dns_server, testing)
        page.locator("#check-dns").click()
        expect(page.locator("#dns-status")).to_contain_text("DNS shows the record of “S2 Quarantine, testing mode”")
        page.locator("#advance").click()
        expect(page.locator("#current-stage")).to_have_text("S2 Quarantine, testing mode")
        screenshot(page, "first-hour-4-policy")

        # 9. A second domain already quarantines: the plan proposes that stage and adopts it.
        dns_server.add("_dmarc.example.org", "TXT", f'"v=DMARC1; p=quarantine; rua=mailto:{RUA}"')
        dns_server.add("example.org._report._dmarc.example.com", "TXT", '"v=DMARC1"')
        page.get_by_role("link", name="Organization", exact=True).click()
        page.get_by_label("Domain name").fill("example.org")
        page.get_by_role("button", name="Add", exact=True).click()
        expect(page).to_have_url(re.compile(r"/domains/example\.org/setup/$"))
        page.locator("#check").click()
        expect(page.locator("#merge-status")).to_contain_text(f"It already sends aggregate reports to {RUA}")
        expect(page.locator("#verification-status")).to_contain_text("published")
        page.get_by_role("link", name="Policy", exact=True).click()
        expect(page.locator("#current-stage")).to_have_text("S1 Monitor")
        page.locator("#check-dns").click()
        expect(page.locator("#proposal")).to_contain_text("v=DMARC1; p=quarantine")
        page.locator("#adopt").click()
        expect(page.locator("#current-stage")).to_have_text("S3 Quarantine")
        screenshot(page, "first-hour-5-adopted")

        # 10. A new failing source arrives: the alert email reaches the address set on the account.
        page.get_by_role("link", name="Upload", exact=True).click()
        name, data = report_of(
            "yahoo.com", 1, [record_xml(ip=NEW_SPOOFER, count=40, dkim="fail", spf="fail", dkim_auth=(), spf_auth=())]
        )
        page.locator("input[type=file]").set_input_files(
            [{"name": name, "mimeType": "application/gzip", "buffer": data}]
        )
        page.get_by_role("button", name="Upload").click()
        expect(page.locator("main table tbody tr td:nth-child(3)")).to_have_text(["stored"])
        received = mail_with_subject(smtp_server, "[dmarcdash] 1 new failing source for example.com")
        assert received.rcpt_tos == [OWNER_EMAIL]
        text = received.message.get_body(("plain",)).get_content()
        assert NEW_SPOOFER in text and "likely spoofing" in text
        assert f"{app.url}/domains/example.com/sources/" in text  # links lead to where make run serves
    assert admin_requests == []


def mail_with_subject(smtp_server, subject: str, timeout: float = 90):
    """The first message with ``subject`` the listener receives (others, such as the email saying
    the DMARC record changed, may come first)."""
    deadline = time.monotonic() + timeout
    while True:
        for received in smtp_server.messages:
            if received.message["Subject"] == subject:
                return received
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            subjects = [item.message["Subject"] for item in smtp_server.messages]
            raise AssertionError(f"no email {subject!r} in {timeout:.0f} s; received {subjects}")
        try:
            smtp_server.wait_for(len(smtp_server.messages) + 1, timeout=remaining)
        except AssertionError:
            pass  # said above, with the subjects that did come


def row(page: Page, ip: str):
    return page.locator("#sources tbody tr").filter(has=page.get_by_role("link", name=ip, exact=True))


def test_reports_from_the_mailbox_in_imap_url_reach_the_first_domain(page, tmp_path, app_env, imap_account):
    """The same start with ``IMAP_URL`` set: the week's reports, mailed to the rua mailbox, arrive
    in the first organization and show on its domain."""
    messages = []
    for name, data in week_of_reports():
        subject = f"Report Domain: example.com Submitter: {name.split('!')[0]} Report-ID: {name}"
        messages.append(report_email([(name, "application/gzip", data)], subject=subject))
    append_messages(imap_account, "INBOX", messages)
    dovecot = imap_account.dovecot
    env = app_env | {
        "IMAP_URL": f"imap+plain://{imap_account.username}:{imap_account.password}@127.0.0.1:{dovecot.port}/INBOX",
        "MAILBOX_ALLOWED_NETWORKS": "127.0.0.0/8",
    }
    admin_requests = never_admin(page)
    with started("first-hour-imap", tmp_path / "data", env) as app:
        log_in(page, app)
        get_started(page)
        page.get_by_role("link", name="Dashboard", exact=True).click()
        reload_until(page, page.locator("main"), f"{WEEK_MESSAGES:,}", "the week's reports from the mailbox", app)
        page.locator("nav.tabs").get_by_role("link", name="Sources").click()
        expect(row(page, SPOOFER).locator("details.verdict summary")).to_contain_text("likely spoofing")
        page.get_by_role("link", name="Ingestion", exact=True).click()
        expect(page.locator("main")).to_contain_text("IMAP_URL")
        screenshot(page, "first-hour-imap-ingestion")
    assert admin_requests == []
