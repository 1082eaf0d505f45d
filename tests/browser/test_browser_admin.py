"""Running an organization in a real browser: an owner invites an admin by email, the admin joins by
the link, adds a domain (publishing the records the page asks for, then checking them) and a
mailbox (testing the connection to a real Dovecot), and a viewer finds nothing to change.

Everything goes through the UI and real servers: the invitation over the SMTP listener, the DNS
check against the local DNS server, the mailbox test against Dovecot on 127.0.0.1. Each person has
their own browser context (their own cookies), as they would have their own browser. The viewer's
attempts to change things anyway are made with their own session and a valid CSRF token, so the
404s come from the role checks, not from a missing token.
"""

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from reports.models import AuditEntry, Domain, Invitation, Mailbox, Membership, Organization
from tests.support.browser import logged_in, screenshot, watched_tab
from tests.support.cast import member

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("cheap_passwords")]

RUA = "dmarc@reports.dashboard.example"
PASSWORD = "a-Long-enough-pass-93"  # noqa: S105 (a test account's)


@pytest.fixture
def acme(acme, olivia, settings) -> Organization:
    """Acme with Olivia, its owner, and Victor, a viewer; reports for its domains come to RUA."""
    settings.DMARC_RUA = RUA
    member(acme, "victor", Membership.Role.VIEWER, email="victor@acme.example")
    return acme


@pytest.fixture
def second_page(browser: Browser) -> Iterator[Page]:
    """A tab in a browser context of its own (another person's browser), checked like ``page``."""
    with watched_tab(browser) as tab:
        yield tab


def invitation_link(received) -> str:
    text = received.message.get_body(("plain",)).get_content()
    (link,) = re.findall(r"https?://\S+/invitations/\S+/", text)
    return link


def check_read_only(view: Page, live_server, mailbox_id: int) -> None:
    """Victor, a viewer: no form that changes anything on any page, and a 404 for every change he
    makes by hand."""
    site = live_server.url
    logged_in(view, live_server, "victor", "victor-password")
    read_only = [
        "/orgs/acme/domains/",
        "/orgs/acme/members/",
        "/orgs/acme/mailboxes/",
        "/orgs/acme/settings/",
        "/domains/example.org/setup/",
        "/domains/example.org/policy/",
    ]
    for path in read_only:
        response = view.goto(f"{site}{path}")
        assert response.status == 200, path
        # Leaving is the one thing any member may do.
        buttons = view.locator("main form[method=post] button").all_inner_texts()
        assert buttons in ([], ["Leave Acme"]), f"{path} offers a viewer {buttons}"
    expect(view.locator("main")).to_contain_text("example.org")
    view.goto(f"{site}/orgs/acme/mailboxes/")
    expect(view.locator("#mailboxes")).to_contain_text("Reports inbox")
    expect(view.locator("main a:text-is('Add a mailbox')")).to_have_count(0)
    screenshot(view, "viewer-mailboxes")

    # ... and every change he makes by hand, with his own session and token, is answered 404.
    attempts = {
        "/orgs/acme/domains/add/": {"name": "victor.example"},
        "/orgs/acme/members/invite/": {"email": "friend@victor.example", "role": "owner"},
        "/orgs/acme/mailboxes/add/": {"name": "Mine", "host": "127.0.0.1", "port": "143", "security": "plain"},
        f"/orgs/acme/mailboxes/{mailbox_id}/delete/": {},
        "/orgs/acme/settings/": {"raw_retention_days": "7", "record_retention_days": "30"},
        "/domains/example.org/delete/": {"confirm": "example.org"},
    }
    for path, data in attempts.items():
        assert post_as(view, f"{site}{path}", data) == 404, path


def post_as(page: Page, url: str, data: dict[str, str]) -> int:
    """POST from the page's own session with its CSRF token, as a hand-made form would; the status."""
    (token,) = [c["value"] for c in page.context.cookies() if c["name"] == "csrftoken"]
    response = page.request.post(url, form=data, headers={"X-CSRFToken": token}, max_redirects=0)
    return response.status


def test_an_owner_invites_an_admin_who_adds_a_domain_and_a_mailbox_and_a_viewer_changes_nothing(
    page, second_page, browser, live_server, acme, smtp_settings, settings, dns_zone, imap_account
):
    site = live_server.url
    settings.SITE_URL = f"{site}/"

    # 1. Olivia opens her organization from the menu and invites Ada as an admin.
    logged_in(page, live_server, "olivia", "olivia-password")
    page.click("header nav a:text-is('Organization')")
    page.wait_for_url(f"{site}/orgs/acme/domains/")
    page.click("nav.tabs a:text-is('Members')")
    page.fill("#invite input[name=email]", "ada@acme.example")
    page.select_option("#invite select[name=role]", "admin")
    page.click("#invite button[type=submit]")
    expect(page.locator("#invitations")).to_contain_text("ada@acme.example")
    expect(page.locator("#invitations")).to_contain_text("Admin")
    screenshot(page, "admin-invited")

    # 2. The invitation arrives by email; Ada opens its link in her own browser and creates her account.
    (received,) = smtp_settings.wait_for(1)
    assert received.rcpt_tos == ["ada@acme.example"]
    link = invitation_link(received)
    assert link.startswith(f"{site}/invitations/")
    ada = second_page
    ada.goto(link)
    expect(ada.locator("main")).to_contain_text("to join Acme as admin")
    ada.fill("#signup input[name=username]", "ada")
    ada.fill("#signup input[name=password1]", PASSWORD)
    ada.fill("#signup input[name=password2]", PASSWORD)
    with ada.expect_navigation():
        ada.click("#signup button[type=submit]")
    expect(ada.locator("main")).to_contain_text("Welcome to Acme: you joined as Admin.")
    assert Membership.objects.get(user__username="ada", organization=acme).role == Membership.Role.ADMIN
    # The link worked once: opening it again says so.
    ada.goto(link)
    expect(ada.locator("main .error")).to_contain_text("already been used")

    # 3. Ada adds example.org and is shown the records to publish.
    ada.goto(f"{site}/")
    ada.click("header nav a:text-is('Organization')")
    ada.fill("#add-domain input[name=name]", "Example.ORG")
    with ada.expect_navigation():
        ada.click("#add-domain button[type=submit]")
    assert ada.url == f"{site}/domains/example.org/setup/"
    record = ada.locator("#record-value").inner_text()
    assert record == f"v=DMARC1; p=none; rua=mailto:{RUA}"
    verification_host = ada.locator(".verification-host").inner_text()
    assert verification_host == "example.org._report._dmarc.reports.dashboard.example"
    expect(ada.locator("#verification-status")).to_contain_text("not been checked yet")

    # 4. She publishes them (here: in the local DNS server the app asks) and checks: both are found.
    dns_zone.add("_dmarc.example.org", "TXT", f'"{record}"')
    dns_zone.add(verification_host, "TXT", '"v=DMARC1"')
    with ada.expect_navigation():
        ada.click("#check")
    expect(ada.locator("#dns-record")).to_have_text(record)
    expect(ada.locator("#rua-status")).to_contain_text(f"Reports are sent to {RUA}.")
    expect(ada.locator("#verification-status")).to_contain_text("published")
    screenshot(ada, "admin-domain-setup")

    # 5. She adds the mailbox the reports go to, and tests the connection to it.
    ada.click("nav.tabs a:text-is('Mailboxes')")
    ada.click("main a:text-is('Add a mailbox')")
    ada.fill("#mailbox input[name=name]", "Reports inbox")
    ada.fill("#mailbox input[name=host]", imap_account.dovecot.host)
    ada.fill("#mailbox input[name=port]", str(imap_account.dovecot.port))
    ada.select_option("#mailbox select[name=security]", "plain")
    ada.fill("#mailbox input[name=username]", imap_account.username)
    ada.fill("#mailbox input[name=password]", imap_account.password)
    with ada.expect_navigation():
        ada.click("#mailbox button[type=submit]")
    mailbox = Mailbox.objects.get(organization=acme, name="Reports inbox")
    assert ada.url == f"{site}/orgs/acme/mailboxes/{mailbox.pk}/"
    assert imap_account.password not in ada.content()  # write-only
    with ada.expect_navigation():
        ada.click("#test-connection button[type=submit]")
    expect(ada.locator("main p.good")).to_be_visible()
    expect(ada.locator("main p.error")).to_have_count(0)
    screenshot(ada, "admin-mailbox")

    # 6. Olivia sees Ada as an admin and every step in the audit log, under Ada's name.
    page.reload()
    expect(page.locator("#members")).to_contain_text("ada")
    expect(page.locator("#invitations")).to_have_count(0)
    page.click("nav.tabs a:text-is('Audit log')")
    log = page.locator("main table")
    for action in ("member.invited", "member.joined", "domain.added", "mailbox.added"):
        expect(log).to_contain_text(action)
    assert set(AuditEntry.objects.filter(organization=acme).values_list("action", flat=True)) >= {
        "member.invited",
        "member.joined",
        "domain.added",
        "mailbox.added",
    }
    assert AuditEntry.objects.get(action="mailbox.added").actor == "ada"

    # 7. Victor, a viewer, sees the same pages without a single form that changes anything (but leaving).
    with watched_tab(browser) as view:
        check_read_only(view, live_server, mailbox.pk)
    assert set(Domain.objects.filter(organization=acme).values_list("name", flat=True)) == {
        "example.com",
        "example.org",
    }
    assert list(Mailbox.objects.filter(organization=acme).values_list("name", flat=True)) == ["Reports inbox"]
    assert not Invitation.objects.filter(email="friend@victor.example").exists()
    organization = Organization.objects.get(pk=acme.pk)
    assert (organization.raw_retention_days, organization.record_retention_days) == (
        acme.raw_retention_days,
        acme.record_retention_days,
    )
