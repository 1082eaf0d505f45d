"""An organization's own settings pages: who reads and who changes them, mailboxes with a
write-only password tested against a real Dovecot, API tokens shown once, and the audit log."""

import pytest

from reports.models import ApiToken, AuditEntry, Mailbox, Organization
from reports.tenancy import secrets
from tests.support.builders import report_xml
from tests.support.cast import member

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

PASSWORD = "s3cret-imap-pässword"


@pytest.fixture
def as_role(client, acme):
    def login(role: str):
        client.force_login(member(acme, role=role))
        return client

    return login


def mailbox_data(**fields) -> dict:
    data = {
        "name": "rua",
        "host": "imap.example.net",
        "port": "993",
        "security": "tls",
        "username": "dmarc@example.net",
        "password": PASSWORD,
        "folder": "INBOX",
        "processed_folder": "DMARC-Processed",
        "invalid_folder": "DMARC-Invalid",
        "poll_interval": "300",
        "enabled": "on",
    }
    return {**data, **fields}


def make_mailbox(organization, **fields) -> Mailbox:
    values = {
        "organization": organization,
        "name": "rua",
        "host": "imap.example.net",
        "username": "dmarc@example.net",
        "password_encrypted": secrets.encrypt(PASSWORD),
    }
    return Mailbox.objects.create(**{**values, **fields})


# Settings


def test_a_viewer_reads_the_settings_but_cannot_change_them(as_role, acme):
    client = as_role("viewer")
    page = client.get("/orgs/acme/settings/")
    assert page.status_code == 200
    assert b"Unverified reports" in page.content and b"<form" not in page.content.split(b"<main>")[1]
    response = client.post("/orgs/acme/settings/", {"unverified_reports": "show", "raw_retention_days": "0"})
    assert response.status_code == 404
    acme.refresh_from_db()
    assert acme.unverified_reports == Organization.Unverified.FLAG
    assert not AuditEntry.objects.exists()


def test_an_outsider_gets_404_on_every_page(client, acme):
    make_mailbox(acme)
    other = Organization.objects.create(name="Globex", slug="globex")
    client.force_login(member(other, role="owner"))
    for url in ("settings/", "mailboxes/", "mailboxes/add/", "tokens/", "audit/"):
        assert client.get(f"/orgs/acme/{url}").status_code == 404, url


def test_an_admin_changes_the_settings_and_the_audit_log_keeps_only_what_changed(as_role, acme):
    client = as_role("admin")
    form = client.get("/orgs/acme/settings/")
    assert b'name="record_retention_days"' in form.content
    assert b'name="name"' not in form.content  # only owners rename
    response = client.post(
        "/orgs/acme/settings/",
        {
            "name": "Renamed by an admin",
            "unverified_reports": "quarantine",
            "raw_retention_days": "30",
            "record_retention_days": "90",
            "alert_min_messages": "1",
            "subscribe_new_members": "on",
            "failure_retention_days": "30",
            "failure_defang_urls": "on",
        },
    )
    assert response.status_code == 302
    acme.refresh_from_db()
    assert (acme.name, acme.unverified_reports, acme.raw_retention_days, acme.record_retention_days) == (
        "Acme",
        "quarantine",
        30,
        90,
    )
    entry = AuditEntry.objects.get(action="organization.settings-changed")
    assert entry.before == {"unverified_reports": "flag", "raw_retention_days": 0, "record_retention_days": 0}
    assert entry.after == {"unverified_reports": "quarantine", "raw_retention_days": 30, "record_retention_days": 90}
    assert entry.organization == acme and entry.actor == "admin-acme"


def test_retention_shorter_than_the_dashboard_needs_is_refused(as_role, acme):
    client = as_role("admin")
    data = {"unverified_reports": "flag", "alert_min_messages": "1", "raw_retention_days": "0"}
    page = client.post("/orgs/acme/settings/", {**data, "record_retention_days": "5"})
    assert page.status_code == 200 and b"at least 30 days" in page.content
    acme.refresh_from_db()
    assert acme.record_retention_days == 0


def test_an_owner_renames_the_organization(as_role, acme):
    client = as_role("owner")
    data = {"unverified_reports": "flag", "raw_retention_days": "0", "record_retention_days": "0"}
    data |= {"failure_retention_days": "30", "failure_defang_urls": "on"}
    response = client.post("/orgs/acme/settings/", {**data, "name": "Acme Corp", "alert_min_messages": "5"})
    assert response.status_code == 302
    acme.refresh_from_db()
    assert acme.name == "Acme Corp" and acme.slug == "acme"
    entry = AuditEntry.objects.get(action="organization.settings-changed")
    assert entry.before == {"name": "Acme", "alert_min_messages": 1, "subscribe_new_members": True}
    assert entry.after == {"name": "Acme Corp", "alert_min_messages": 5, "subscribe_new_members": False}


# Mailboxes


def test_a_viewer_sees_the_mailboxes_state_but_no_password_and_cannot_change_them(as_role, acme):
    mailbox = make_mailbox(acme, last_error="LOGIN failed", failures=3)
    client = as_role("viewer")
    page = client.get("/orgs/acme/mailboxes/")
    assert page.status_code == 200
    for shown in (b"rua", b"imap.example.net", b"dmarc@example.net", b"INBOX", b"LOGIN failed"):
        assert shown in page.content
    assert PASSWORD.encode() not in page.content and mailbox.password_encrypted.encode() not in page.content
    assert b"Test connection" not in page.content
    for method, url in (
        ("get", "/orgs/acme/mailboxes/add/"),
        ("post", "/orgs/acme/mailboxes/add/"),
        ("get", f"/orgs/acme/mailboxes/{mailbox.pk}/"),
        ("post", f"/orgs/acme/mailboxes/{mailbox.pk}/"),
        ("post", f"/orgs/acme/mailboxes/{mailbox.pk}/delete/"),
        ("post", f"/orgs/acme/mailboxes/{mailbox.pk}/test/"),
    ):
        assert getattr(client, method)(url, mailbox_data()).status_code == 404, url
    assert Mailbox.objects.get() == mailbox


def test_an_admin_adds_a_mailbox_with_the_password_stored_encrypted_and_never_shown(as_role, acme):
    client = as_role("admin")
    response = client.post("/orgs/acme/mailboxes/add/", mailbox_data())
    mailbox = Mailbox.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/orgs/acme/mailboxes/{mailbox.pk}/"
    assert mailbox.organization == acme and mailbox.password_env == ""
    assert PASSWORD not in mailbox.password_encrypted
    assert secrets.decrypt(mailbox.password_encrypted) == PASSWORD
    for url in ("/orgs/acme/mailboxes/", f"/orgs/acme/mailboxes/{mailbox.pk}/"):
        body = client.get(url).content
        assert PASSWORD.encode() not in body and mailbox.password_encrypted.encode() not in body, url
    entry = AuditEntry.objects.get(action="mailbox.added")
    assert entry.after["host"] == "imap.example.net" and entry.after["password set"] is True
    assert PASSWORD not in str(entry.after) and "password_encrypted" not in entry.after


def test_a_mailbox_needs_a_password_and_plain_imap_only_to_loopback(as_role, acme):
    client = as_role("admin")
    page = client.post("/orgs/acme/mailboxes/add/", mailbox_data(password=""))
    assert page.status_code == 200 and b"This field is required" in page.content
    page = client.post("/orgs/acme/mailboxes/add/", mailbox_data(security="plain", port="143"))
    assert page.status_code == 200 and b"only allowed to a loopback address" in page.content
    assert PASSWORD.encode() not in page.content  # not even in the re-rendered form
    assert not Mailbox.objects.exists()


def test_a_tenant_cannot_point_a_mailbox_at_the_servers_environment(as_role, acme):
    client = as_role("admin")
    client.post("/orgs/acme/mailboxes/add/", mailbox_data(password_env="SECRET_KEY", ca_file="/etc/shadow"))
    mailbox = Mailbox.objects.get()
    assert mailbox.password_env == "" and mailbox.ca_file == ""


def test_editing_with_a_blank_password_keeps_it_and_the_audit_says_only_what_changed(as_role, acme):
    mailbox = make_mailbox(acme)
    stored = mailbox.password_encrypted
    client = as_role("admin")
    response = client.post(f"/orgs/acme/mailboxes/{mailbox.pk}/", mailbox_data(password="", folder="Reports"))
    assert response.status_code == 302
    mailbox.refresh_from_db()
    assert mailbox.folder == "Reports" and mailbox.password_encrypted == stored
    entry = AuditEntry.objects.get(action="mailbox.changed")
    assert (entry.before, entry.after) == ({"folder": "INBOX"}, {"folder": "Reports"})

    client.post(f"/orgs/acme/mailboxes/{mailbox.pk}/", mailbox_data(password="a-new-one", folder="Reports"))
    mailbox.refresh_from_db()
    assert secrets.decrypt(mailbox.password_encrypted) == "a-new-one"
    entry = AuditEntry.objects.filter(action="mailbox.changed").first()
    assert (entry.before, entry.after) == ({}, {"password changed": True})


def test_a_stored_password_is_not_sent_to_a_new_server_without_typing_it_again(as_role, acme):
    mailbox = make_mailbox(acme)
    client = as_role("admin")
    page = client.post(f"/orgs/acme/mailboxes/{mailbox.pk}/", mailbox_data(password="", host="evil.example"))
    assert page.status_code == 200 and b"enter the password again" in page.content
    mailbox.refresh_from_db()
    assert mailbox.host == "imap.example.net"


def test_an_admin_deletes_a_mailbox(as_role, acme):
    mailbox = make_mailbox(acme)
    client = as_role("admin")
    assert client.post(f"/orgs/acme/mailboxes/{mailbox.pk}/delete/").status_code == 302
    assert not Mailbox.objects.exists()
    entry = AuditEntry.objects.get(action="mailbox.deleted")
    assert entry.before["name"] == "rua" and PASSWORD not in str(entry.before)


def test_another_organizations_mailbox_is_404_for_an_admin(as_role, acme):
    other = Organization.objects.create(name="Globex", slug="globex")
    theirs = make_mailbox(other)
    client = as_role("admin")
    for suffix in ("", "delete/", "test/"):
        assert client.post(f"/orgs/acme/mailboxes/{theirs.pk}/{suffix}").status_code == 404, suffix
    assert Mailbox.objects.filter(pk=theirs.pk).exists()


def test_connection_test_against_a_real_dovecot(as_role, acme, imap_account):
    client = as_role("admin")
    data = mailbox_data(
        host=imap_account.dovecot.host,
        port=str(imap_account.dovecot.port),
        security="plain",
        username=imap_account.username,
        password=imap_account.password,
    )
    assert client.post("/orgs/acme/mailboxes/add/", data).status_code == 302
    mailbox = Mailbox.objects.get()

    page = client.post(f"/orgs/acme/mailboxes/{mailbox.pk}/test/", follow=True)
    assert page.status_code == 200
    assert f"Connected to {imap_account.dovecot.host}:{imap_account.dovecot.port}".encode() in page.content
    assert b"holds 0 messages" in page.content

    wrong = mailbox_data(**{**data, "password": "not-the-password"})
    client.post(f"/orgs/acme/mailboxes/{mailbox.pk}/", wrong)
    page = client.post(f"/orgs/acme/mailboxes/{mailbox.pk}/test/", follow=True)
    assert b"Connection test of rua failed" in page.content and b"refused the login" in page.content
    assert b"not-the-password" not in page.content and imap_account.password.encode() not in page.content

    client.post(f"/orgs/acme/mailboxes/{mailbox.pk}/", {**data, "folder": "No-Such-Folder"})
    page = client.post(f"/orgs/acme/mailboxes/{mailbox.pk}/test/", follow=True)
    assert b"cannot be opened" in page.content


def test_a_connection_test_without_a_password_says_so_without_dialling(as_role, acme):
    mailbox = make_mailbox(acme, password_encrypted="", host="192.0.2.1")
    page = as_role("admin").post(f"/orgs/acme/mailboxes/{mailbox.pk}/test/", follow=True)
    assert b"no password configured" in page.content


# API tokens


def test_a_token_is_shown_once_and_only_its_hash_is_kept(as_role, acme):
    client = as_role("admin")
    page = client.post("/orgs/acme/tokens/create/", {"name": "mail server script"})
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    token = ApiToken.objects.get()
    secret = page.context["secret"]
    assert secret.startswith(token.prefix) and secret.encode() in page.content
    assert b"not stored" in page.content
    assert ApiToken.hash(secret) == token.digest and secret not in token.digest
    listing = client.get("/orgs/acme/tokens/")
    assert listing.status_code == 200 and b"mail server script" in listing.content
    assert secret.encode() not in listing.content
    entry = AuditEntry.objects.get(action="token.created")
    assert entry.after == {"name": "mail server script", "prefix": token.prefix}
    assert secret not in str(entry.after) and token.digest not in str(entry.after)


def test_a_token_needs_a_name(as_role, acme):
    page = as_role("admin").post("/orgs/acme/tokens/create/", {"name": "  "})
    assert page.status_code == 200 and not ApiToken.objects.exists()
    assert page.context["secret"] == ""


def test_a_revoked_token_is_refused_by_the_api(as_role, acme):
    token, secret = ApiToken.issue(acme, "script")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    client = as_role("admin")
    body = report_xml()
    assert client.post("/api/v1/intake", body, content_type="application/xml", **auth).status_code == 201
    assert client.post(f"/orgs/acme/tokens/{token.pk}/revoke/").status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert client.post("/api/v1/intake", body, content_type="application/xml", **auth).status_code == 401
    entry = AuditEntry.objects.get(action="token.revoked")
    assert entry.target == str(token) and secret not in str(entry.after)
    client.post(f"/orgs/acme/tokens/{token.pk}/revoke/")
    assert AuditEntry.objects.filter(action="token.revoked").count() == 1  # once


def test_viewers_do_not_see_tokens_and_admins_cannot_revoke_another_organizations(as_role, client, acme):
    other = Organization.objects.create(name="Globex", slug="globex")
    theirs, _ = ApiToken.issue(other, "theirs")
    viewer = as_role("viewer")
    assert viewer.get("/orgs/acme/tokens/").status_code == 404
    assert viewer.post("/orgs/acme/tokens/create/", {"name": "x"}).status_code == 404
    admin = as_role("admin")
    assert admin.post(f"/orgs/acme/tokens/{theirs.pk}/revoke/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


# The audit log


def test_the_audit_log_shows_changes_escaped_filtered_and_without_secrets(as_role, acme):
    client = as_role("admin")
    client.post("/orgs/acme/mailboxes/add/", mailbox_data(name="<script>alert(1)</script>"))
    client.post("/orgs/acme/tokens/create/", {"name": "deploy"})
    secret = ApiToken.objects.get()
    page = client.get("/orgs/acme/audit/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "mailbox.added" in body and "token.created" in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script>alert" not in body
    assert "host: " in body and "imap.example.net" in body
    assert PASSWORD not in body and secret.digest not in body
    only_tokens = client.get("/orgs/acme/audit/?area=token").content.decode()
    assert "token.created" in only_tokens and "mailbox.added" not in only_tokens
    assert "whatever" not in client.get("/orgs/acme/audit/?area=whatever").content.decode()


def test_the_audit_log_pages_and_belongs_to_admins(as_role, acme):
    from reports.tenancy import audit

    for n in range(60):
        audit.record(None, acme, "domain.added", f"d{n}.example", after={"n": n})
    assert as_role("viewer").get("/orgs/acme/audit/").status_code == 404
    client = as_role("admin")
    first = client.get("/orgs/acme/audit/?area=domain")
    assert b"Page 1 of 2" in first.content and b"d59.example" in first.content
    assert b"area=domain&amp;page=2" in first.content
    second = client.get("/orgs/acme/audit/?area=domain&page=2")
    assert b"d0.example" in second.content and b"d59.example" not in second.content


def test_the_failure_sample_privacy_settings_are_kept_and_audited(as_role, acme):
    client = as_role("admin")
    page = client.get("/orgs/acme/settings/")
    assert b"Keep failure samples (days)" in page.content and b"personal data" in page.content
    data = {
        "unverified_reports": "flag",
        "raw_retention_days": "0",
        "record_retention_days": "0",
        "alert_min_messages": "1",
    }
    response = client.post(
        "/orgs/acme/settings/",
        {**data, "failure_retention_days": "14", "failure_hash_local_parts": "on", "failure_samples_for_viewers": "on"},
    )
    assert response.status_code == 302
    acme.refresh_from_db()
    assert (acme.failure_retention_days, acme.failure_hash_local_parts, acme.failure_defang_urls) == (14, True, False)
    assert acme.failure_samples_for_viewers
    entry = AuditEntry.objects.get(action="organization.settings-changed")
    assert entry.after["failure_hash_local_parts"] is True and entry.after["failure_retention_days"] == 14
