"""Web upload, the HTTP API with per-organization tokens, and the ingestion status page."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from reports.intake.pipeline import ingest_bytes
from reports.models import ApiToken, Intake, Mailbox, Organization, Report
from tests.support.builders import gzipped, record_xml, report_xml, zipped
from tests.support.cast import member

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def test_it_stores_several_uploaded_files_for_the_chosen_organization(client, acme):
    client.force_login(member(acme, "alice", "admin"))
    files = [
        SimpleUploadedFile("a.xml.gz", gzipped(report_xml(report_id="a"))),
        SimpleUploadedFile("b.zip", zipped({"b.xml": report_xml(report_id="b")})),
        SimpleUploadedFile("junk.txt", b"hello"),
    ]
    response = client.post("/upload/", {"organization": acme.pk, "files": files})
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count(">stored<") == 2
    assert "input is not XML, gzip, zip or an email" in page
    assert set(Report.objects.values_list("report_id", flat=True)) == {"a", "b"}
    assert set(Intake.objects.values_list("source", "organization")) == {("upload", acme.pk)}
    assert Report.objects.get(report_id="a").domain.organization == acme


def test_it_lets_only_admins_and_owners_upload(client, acme):
    client.force_login(member(acme, "victor", "viewer"))
    assert client.get("/upload/").status_code == 404
    response = client.post("/upload/", {"organization": acme.pk, "files": [SimpleUploadedFile("a.xml", report_xml())]})
    assert response.status_code == 404
    assert not Intake.objects.exists()


def test_it_refuses_an_upload_into_someone_elses_organization(client, acme):
    globex = Organization.objects.create(name="Globex", slug="globex")
    client.force_login(member(globex, "bob", "owner"))
    response = client.post("/upload/", {"organization": acme.pk, "files": [SimpleUploadedFile("a.xml", report_xml())]})
    assert "Select a valid choice" in response.content.decode()
    assert not Intake.objects.exists()


def api(client, data: bytes, token: str | None, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.post(
        "/api/v1/intake?name=r.xml.gz", data, content_type="application/octet-stream", **headers, **extra
    )


def test_it_takes_reports_over_the_api_with_a_token(client, acme):
    _, secret = ApiToken.issue(acme, "relay")
    response = api(client, gzipped(report_xml()), secret)
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "stored"
    assert body["reports"][0]["report_id"] == "r-1"
    intake = Intake.objects.get()
    assert (intake.source, intake.organization, intake.name) == ("api", acme, "r.xml.gz")
    again = api(client, gzipped(report_xml()), secret)
    assert (again.status_code, again.json()["status"]) == (201, "duplicate")


@pytest.mark.parametrize("token", [None, "dd_wrong", "Basic abc"])
def test_it_refuses_the_api_without_a_valid_token(client, acme, token):
    response = api(client, report_xml(), token)
    assert response.status_code == 401
    assert not Intake.objects.exists()


def test_it_refuses_a_revoked_token(client, acme):
    token, secret = ApiToken.issue(acme, "old")
    call_command("api_token", "revoke", str(token.pk), stdout=io.StringIO())
    assert api(client, report_xml(), secret).status_code == 401


def test_it_answers_422_with_the_reason_for_a_refused_input(client, acme):
    _, secret = ApiToken.issue(acme, "relay")
    response = api(client, b"<html/>", secret)
    assert response.status_code == 422
    assert response.json()["reports"][0]["reason"] == "not a DMARC aggregate report: no <feedback> element found"
    assert Intake.objects.get().status == "refused"


def test_it_refuses_an_oversized_api_body(client, acme, settings):
    settings.DMARC_LIMITS = {**settings.DMARC_LIMITS, "max_message_bytes": 1024}
    _, secret = ApiToken.issue(acme, "relay")
    response = api(client, report_xml([record_xml()] * 20), secret)
    assert response.status_code == 413
    assert not Intake.objects.exists()


def test_it_stores_only_a_hash_of_the_token(acme):
    out = io.StringIO()
    call_command("api_token", "create", "acme", "relay", stdout=out)
    secret = out.getvalue().split(": ", 1)[1].split()[0]
    token = ApiToken.objects.get()
    assert secret.startswith("dd_") and secret not in (token.digest, token.prefix)
    assert ApiToken.authenticate(secret) == token


def test_the_ingestion_page_shows_mailboxes_counts_and_refusals_of_the_users_organizations(client, acme):
    globex = Organization.objects.create(name="Globex", slug="globex")
    Mailbox.objects.create(
        organization=acme, name="rua", host="imap.example.com", username="rua", last_error="login refused", failures=3
    )
    Mailbox.objects.create(organization=globex, name="globex-rua", host="imap.globex.example", username="g")
    ingest_bytes(b"junk-for-acme", source=Intake.Channel.API, name="acme.bin", organization=acme)
    ingest_bytes(b"junk-for-globex", source=Intake.Channel.API, name="globex.bin", organization=globex)
    client.force_login(member(acme, "alice", "viewer"))
    page = client.get("/ingestion/").content.decode()
    assert "rua@imap.example.com" in page and "login refused (3 failed polls in a row)" in page
    assert "imap.globex.example" not in page
    assert "acme.bin" in page and "globex.bin" not in page
    assert "Replay" not in page  # viewers cannot replay


def test_an_admin_replays_a_refused_input_from_the_ingestion_page(client, acme, settings):
    settings.DMARC_LIMITS = {**settings.DMARC_LIMITS, "max_records": 1}
    ingest_bytes(report_xml([record_xml()] * 2), source=Intake.Channel.API, name="two.xml", organization=acme)
    intake = Intake.objects.get()
    settings.DMARC_LIMITS = {**settings.DMARC_LIMITS, "max_records": 10}
    outsider = member(Organization.objects.create(name="Globex", slug="globex"), "bob", "owner")
    client.force_login(outsider)
    assert client.post(f"/ingestion/{intake.pk}/replay/").status_code == 404
    client.force_login(member(acme, "alice", "admin"))
    assert client.post(f"/ingestion/{intake.pk}/replay/").status_code == 302
    intake.refresh_from_db()
    assert intake.status == "stored"


def test_the_ingestion_page_says_when_no_asn_database_is_installed(client, acme, settings, tmp_path):
    settings.ASN_DATABASE = tmp_path / "missing.sqlite3"
    client.force_login(member(acme, "alice", "viewer"))
    assert "no ASN database installed" in client.get("/ingestion/").content.decode()
