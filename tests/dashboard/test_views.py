"""The report list: login required, scoped to the user's organizations, report text inert."""

import pytest
from django.contrib.auth.models import User

from reports.intake.pipeline import ingest_bytes
from reports.models import Domain, Intake, Organization
from tests.support.builders import record_xml, report_xml

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

XSS = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


def deliver(**kwargs) -> None:
    ingest_bytes(report_xml(**kwargs), source=Intake.Channel.CLI, name="r.xml")


def test_it_asks_for_a_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_it_lists_only_the_reports_of_the_users_domains(client, alice, bob):
    deliver(domain="example.com", report_id="acme-report")
    deliver(domain="globex.example", report_id="globex-report")
    deliver(domain="nobody.example", report_id="unclaimed-report")
    client.force_login(alice)
    page = client.get("/reports/").content.decode()
    assert "acme-report" in page
    assert "globex-report" not in page
    assert "unclaimed-report" not in page
    client.force_login(bob)
    page = client.get("/reports/").content.decode()
    assert "globex-report" in page and "acme-report" not in page


def test_it_shows_unclaimed_reports_and_refused_inputs_to_superusers(client):
    admin = User.objects.create_superuser("root", password="root-password")
    deliver(domain="nobody.example", report_id="unclaimed-report")
    ingest_bytes(b"not a report", source=Intake.Channel.CLI, name="junk.bin")
    client.force_login(admin)
    page = client.get("/reports/").content.decode()
    assert "unclaimed-report" in page
    assert "input is not XML, gzip, zip or an email" in page


def test_it_renders_report_text_inert(client, alice):
    escaped = XSS.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    deliver(domain="example.com", org_name=escaped, report_id=escaped, records=[record_xml(header_from=escaped)])
    client.force_login(alice)
    page = client.get("/reports/").content.decode()
    assert "<script>alert(1)" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_it_gives_superusers_a_ledger_with_a_replay_action_in_the_admin(client, settings):
    admin = User.objects.create_superuser("root", password="root-password")
    settings.DMARC_LIMITS = {**settings.DMARC_LIMITS, "max_records": 1}
    ingest_bytes(report_xml(records=[record_xml()] * 2), source=Intake.Channel.CLI, name="big.xml")
    intake = Intake.objects.get()
    assert intake.status == "refused"
    client.force_login(admin)
    for url in ("/admin/reports/intake/", f"/admin/reports/intake/{intake.pk}/change/", "/admin/reports/report/"):
        assert client.get(url).status_code == 200, url
    settings.DMARC_LIMITS = {**settings.DMARC_LIMITS, "max_records": 10}
    response = client.post(
        "/admin/reports/intake/", {"action": "replay", "index": 0, "_selected_action": [intake.pk]}, follow=True
    )
    assert [str(m) for m in response.context["messages"]] == ["big.xml: stored"]
    intake.refresh_from_db()
    assert intake.status == "stored"


def test_the_admin_stores_a_mailbox_password_encrypted_and_never_shows_it(client):
    from reports.models import Mailbox
    from reports.tenancy.secrets import decrypt

    admin = User.objects.create_superuser("root", password="root-password")
    acme = Organization.objects.create(name="Acme", slug="acme")
    client.force_login(admin)
    form = {
        "organization": acme.pk, "name": "rua", "host": "imap.example.com", "port": 993, "security": "tls",
        "username": "rua@example.com", "password": "s3cret-imap", "password_env": "", "ca_file": "",
        "folder": "INBOX", "processed_folder": "DMARC-Processed", "invalid_folder": "DMARC-Invalid",
        "poll_interval": 300, "enabled": "on",
    }  # fmt: skip
    response = client.post("/admin/reports/mailbox/add/", form)
    assert response.status_code == 302, response.content.decode()[-2000:]
    mailbox = Mailbox.objects.get()
    assert decrypt(mailbox.password_encrypted) == "s3cret-imap"
    page = client.get(f"/admin/reports/mailbox/{mailbox.pk}/change/").content.decode()
    assert "s3cret-imap" not in page and mailbox.password_encrypted not in page
    refused = client.post("/admin/reports/mailbox/add/", {**form, "name": "plain", "security": "plain"})
    assert "plain IMAP is only allowed to a loopback address" in refused.content.decode()


def test_the_admin_lists_senders_source_ips_and_the_inventory(client):
    from reports.models import DomainSender, Sender, SourceIP

    admin = User.objects.create_superuser("root", password="root-password")
    acme = Organization.objects.create(name="Acme", slug="acme")
    domain = Domain.objects.create(organization=acme, name="example.com")
    sender = Sender.objects.create(organization=acme, slug="crm", name="Our CRM", networks=["203.0.113.0/24"])
    DomainSender.objects.create(domain=domain, sender=sender, authorised=True)
    SourceIP.objects.create(ip="203.0.113.5", ptr="crm.example.com")
    client.force_login(admin)
    for url in ("/admin/reports/sender/", "/admin/reports/domainsender/", "/admin/reports/sourceip/"):
        assert client.get(url).status_code == 200, url
    form = {"organization": acme.pk, "slug": "bad", "name": "Bad", "category": "", "ptr_domains": "[]",
            "dkim_domains": "[]", "spf_includes": "[]", "asns": "[]", "networks": '["not-a-network"]'}  # fmt: skip
    page = client.post("/admin/reports/sender/add/", form).content.decode()
    assert "is not a network such as 203.0.113.0/24" in page


def test_the_admin_index_names_models_in_plain_english(client):
    client.force_login(User.objects.create_superuser("root", password="root-password"))
    page = client.get("/admin/").content.decode()
    for name in ("Audit entries", "Mailboxes", "TOTP devices", "Sender inventory"):
        assert f">{name}<" in page, name
    assert "Totp devices" not in page and "Audit entrys" not in page


def test_a_browser_asking_for_favicon_ico_gets_the_svg_icon(client):
    response = client.get("/favicon.ico")
    assert (response.status_code, response["Location"]) == (301, "/static/favicon.svg")
