""" "Connect with Microsoft" in headless Chromium against the suite's local authorization server: an owner
adds a mailbox with delegated access on the custom endpoints of that server, connects, consents on its
consent page and comes back; the mailbox is saved with an encrypted refresh token and a poll drains it over
XOAUTH2 against the real Dovecot with its ``oauth2`` passdb. Denying consent shows what to do. The mailbox
form passes axe-core (no serious or critical violation) and fits a 390 px wide screen."""

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.db import connection
from playwright.sync_api import Page, expect

from reports.intake import imap
from reports.models import AuditEntry, Mailbox, Report
from reports.tenancy.secrets import decrypt
from tests.intake.test_mailbox import google_zip
from tests.support.browser import logged_in, screenshot
from tests.support.dovecot import append_messages
from tests.support.mailboxes import folder_uids

pytestmark = [
    pytest.mark.browser,
    pytest.mark.usefixtures("cheap_passwords"),
]

SERIOUS = ("serious", "critical")


def check_axe_and_width(page: Page, name: str) -> None:
    """No serious or critical axe-core violation, and nothing wider than the screen, at 1280 and 390 px."""
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.reload()
        page.wait_for_load_state("load")
        violations = [
            (violation["id"], [node["target"] for node in violation["nodes"]][:3])
            for violation in Axe().run(page).response["violations"]
            if violation["impact"] in SERIOUS
        ]
        assert violations == [], f"{name} at {width} px: {violations}"
        document_width = page.evaluate("document.documentElement.scrollWidth")
        assert document_width <= width, f"{name} at {width} px is {document_width} px wide"
        screenshot(page, f"oauth-{name}-{width}")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_an_owner_connects_a_microsoft_mailbox_and_it_polls_over_xoauth2(
    page, live_server, olivia, oauth_account, token_server, settings
):
    settings.SITE_URL = live_server.url + "/"
    callback = f"{live_server.url}/oauth/callback/"
    client_id, client_secret = token_server.add_client("nobody", redirect_uri=callback)
    token_server.consent_user = oauth_account.username
    site = live_server.url

    logged_in(page, live_server, "olivia", "olivia-password")
    page.goto(f"{site}/orgs/acme/mailboxes/add/")
    check_axe_and_width(page, "mailbox-add")

    page.fill("input[name=name]", "Microsoft 365")
    page.fill("input[name=host]", oauth_account.dovecot.host)
    page.fill("input[name=port]", str(oauth_account.dovecot.port))
    page.select_option("select[name=security]", "plain")
    page.fill("input[name=username]", oauth_account.username)
    page.select_option("select[name=sign_in]", "microsoft-delegated")
    page.fill("input[name=oauth_client_id]", client_id)
    page.fill("input[name=client_secret]", client_secret)
    page.fill("input[name=oauth_token_url]", token_server.token_url)
    with page.expect_navigation():
        page.click("form#mailbox button[type=submit]")
    expect(page.locator("main")).to_contain_text("now Connect with Microsoft")
    expect(page.locator("#mailbox-state")).to_contain_text("not connected")
    mailbox = Mailbox.objects.get(name="Microsoft 365")
    assert mailbox.auth == Mailbox.Auth.REFRESH_TOKEN and mailbox.oauth_refresh_token_encrypted == ""
    check_axe_and_width(page, "mailbox-edit")

    # Connect: the consent page of the authorization server, then back here.
    with page.expect_navigation():
        page.click("text=Connect with Microsoft")
    assert page.url.startswith(token_server.authorize_url)
    expect(page.locator("h1")).to_have_text("Allow access to your mailbox?")
    screenshot(page, "oauth-consent")
    with page.expect_navigation(url=f"{site}/orgs/acme/mailboxes/{mailbox.pk}/"):
        page.click("button:text-is('Allow')")
    expect(page.locator("main")).to_contain_text("Microsoft 365 is connected to Microsoft")
    expect(page.locator("#mailbox-state")).to_contain_text("connected (refresh token stored encrypted)")
    screenshot(page, "oauth-connected")
    (request,) = token_server.authorizations
    assert request["code_challenge_method"] == "S256" and request["redirect_uri"] == callback
    assert "code_verifier" not in request and token_server.grants == ["authorization_code"]

    # Saved encrypted: the refresh token is in no column of the row in clear, nor on the page.
    mailbox.refresh_from_db()
    refresh = decrypt(mailbox.oauth_refresh_token_encrypted)
    assert refresh.startswith("rt-") and token_server.refresh_tokens[refresh] == (client_id, oauth_account.username)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM reports_mailbox WHERE id = %s", [mailbox.pk])
        row = " ".join(str(value) for value in cursor.fetchone())
    assert refresh not in row and client_secret not in row
    assert refresh not in page.content() and client_secret not in page.content()
    assert AuditEntry.objects.filter(action="mailbox.connected", target="Microsoft 365").count() == 1

    # A poll drains the mailbox over XOAUTH2.
    append_messages(oauth_account, "INBOX", [google_zip("connected-1")])
    result = imap.poll(Mailbox.objects.get(pk=mailbox.pk))
    assert result.error == "" and result.stored == 1
    assert Report.objects.filter(report_id="connected-1").exists() and folder_uids(oauth_account, "INBOX") == []

    # Connecting again and denying consent says so on the mailbox page, and keeps the stored token.
    with page.expect_navigation():
        page.click("text=Connect with Microsoft")
    with page.expect_navigation(url=f"{site}/orgs/acme/mailboxes/{mailbox.pk}/"):
        page.click("button:text-is('Deny')")
    expect(page.locator("main")).to_contain_text("consent was denied")
    expect(page.locator("main")).to_contain_text("Click Connect again and choose Allow")
    screenshot(page, "oauth-denied")
    mailbox.refresh_from_db()
    assert decrypt(mailbox.oauth_refresh_token_encrypted) == refresh
