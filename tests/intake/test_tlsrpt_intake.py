"""SMTP TLS reports (RFC 8460) through every way in: the ledger, exactly once, only for added domains."""

import gzip
import io
import json

import pytest
from django.core.management import call_command

from reports.intake import pipeline
from reports.models import ApiToken, Domain, Intake, Organization, TlsFailure, TlsReport
from tests.support.tlsrpt import failure_detail, tls_policy, tls_report_email, tls_report_json

pytestmark = pytest.mark.django_db


def report(report_id: str = "tls-1", domain: str = "example.com", **fields) -> bytes:
    failures = [
        failure_detail("certificate-expired", failed_sessions=4),
        failure_detail("starttls-not-supported", receiving_mx_hostname="mx2.example.com", failed_sessions="2"),
    ]
    policies = fields.pop("policies", None) or [tls_policy(domain, successful=94, failures=failures)]
    return tls_report_json(report_id=report_id, policies=policies, **fields)


@pytest.mark.embedded
def test_a_gzipped_report_is_stored_once_with_every_field(acme):
    first = pipeline.ingest_bytes(gzip.compress(report()), source=Intake.Channel.CLI, name="google.json.gz")
    assert [o.status for o in first.outcomes] == ["stored"]
    assert first.intake.kind == Intake.Kind.TLSRPT and first.intake.status == Intake.Status.STORED
    stored = TlsReport.objects.get()
    assert (stored.domain.name, stored.organization, stored.report_id) == ("example.com", "Google Inc.", "tls-1")
    assert (stored.successful, stored.failed) == (94, 6)
    assert stored.repairs.get("count as string") or stored.repairs  # "2" was a string: the repair is noted
    policy = stored.policies.get()
    assert policy.policy_type == "sts" and policy.mx_hosts == ["mx1.example.com", "mx2.example.com"]
    assert "mode: enforce" in policy.policy_strings
    details = {f.result_type: f for f in TlsFailure.objects.filter(report=stored)}
    assert details["certificate-expired"].failed_sessions == 4
    assert details["starttls-not-supported"].receiving_mx_hostname == "mx2.example.com"
    assert details["certificate-expired"].sending_mta_ip == "209.85.220.41"

    again = pipeline.ingest_bytes(report(), source=Intake.Channel.CLI, name="google.json")
    assert [o.status for o in again.outcomes] == ["duplicate"]
    assert again.intake.status == Intake.Status.DUPLICATE and TlsReport.objects.count() == 1


@pytest.mark.embedded
def test_a_report_for_a_domain_nobody_added_is_refused_with_its_reason(acme):
    result = pipeline.ingest_bytes(report(domain="nobody.example"), source=Intake.Channel.CLI, name="x.json")
    assert result.intake.status == Intake.Status.REFUSED
    assert "TLS report for nobody.example, which no organization has added: not stored" in result.intake.error
    assert not TlsReport.objects.exists()


def test_a_report_received_by_one_organization_is_not_stored_for_another(acme, globex):
    result = pipeline.ingest_bytes(
        report(domain="globex.example"), source=Intake.Channel.UPLOAD, name="x", organization=acme
    )
    assert result.intake.status == Intake.Status.REFUSED
    assert "which this organization has not added" in result.intake.error
    assert not TlsReport.objects.exists()


def test_one_report_covering_two_domains_stores_the_added_one_and_refuses_the_other(acme):
    policies = [tls_policy("example.com", successful=10), tls_policy("stranger.example", successful=5)]
    result = pipeline.ingest_bytes(report(policies=policies), source=Intake.Channel.CLI, name="two.json")
    assert sorted(o.status for o in result.outcomes) == ["refused", "stored"]
    assert result.intake.status == Intake.Status.PARTIAL
    assert list(TlsReport.objects.values_list("policy_domain", "successful")) == [("example.com", 10)]


def test_a_subdomain_report_belongs_to_the_added_parent(acme):
    pipeline.ingest_bytes(report(domain="mail.example.com"), source=Intake.Channel.CLI, name="sub.json")
    assert TlsReport.objects.get().domain == Domain.objects.get(name="example.com")


def test_hostile_json_is_refused_and_the_next_report_still_stored(acme):
    deep = b'{"a":' * 100 + b"1" + b"}" * 100
    duplicate_keys = b'{"organization-name": "a", "organization-name": "b"}'
    for data in (deep, duplicate_keys, gzip.compress(b'{"x": "' + b"A" * 200_000 + b'"}')):
        result = pipeline.ingest_bytes(data, source=Intake.Channel.CLI, name="hostile.json")
        assert result.intake.status == Intake.Status.REFUSED, result.intake.error
        assert result.intake.error
    assert pipeline.ingest_bytes(report(), source=Intake.Channel.CLI, name="good.json").intake.status == "stored"


@pytest.mark.embedded
def test_a_report_email_is_stored_with_its_submitter(acme):
    email = tls_report_email(report(), domain="example.com", submitter="google.com", base64_style="unpadded")
    result = pipeline.ingest_bytes(email, source=Intake.Channel.CLI, name="tls.eml")
    assert [o.status for o in result.outcomes] == ["stored"]
    assert TlsReport.objects.get().submitter == "google.com"
    assert result.intake.kind == Intake.Kind.TLSRPT


def test_tls_reports_kept_aside_before_are_stored_by_replay(acme, capsys):
    """Inputs an earlier version kept as "TLS report" become reports with ``replay --kept``."""
    result = pipeline.ingest_bytes(report(), source=Intake.Channel.CLI, name="old.json")
    TlsReport.objects.all().delete()
    Intake.objects.filter(pk=result.intake.pk).update(status=Intake.Status.KEPT, error="kept: an SMTP TLS report")
    aggregate = pipeline.ingest_bytes(b"<feedback/>", source=Intake.Channel.CLI, name="other.xml").intake

    call_command("replay", "--kept", "--kind", "tlsrpt")

    assert "TLS report, 100 sessions" in capsys.readouterr().out
    result.intake.refresh_from_db()
    assert result.intake.status == Intake.Status.STORED and TlsReport.objects.count() == 1
    aggregate.refresh_from_db()
    assert aggregate.status == Intake.Status.REFUSED  # not replayed: not kept, not a TLS report


@pytest.mark.embedded
def test_the_ingest_command_says_what_a_tls_report_held(acme, tmp_path, capsys):
    path = tmp_path / "google.json"
    path.write_bytes(report())
    call_command("ingest", str(path))
    out = capsys.readouterr().out
    assert (
        "stored: " in out and "TLS report for example.com from Google Inc., report tls-1, 100 sessions, 6 failed" in out
    )


def test_an_upload_shows_the_tls_report(client, acme, olivia):
    client.force_login(olivia)
    upload = io.BytesIO(gzip.compress(report()))
    upload.name = "tls.json.gz"
    response = client.post("/upload/", {"organization": acme.pk, "files": [upload]})
    assert response.status_code == 200
    assert b"TLS report" in response.content and TlsReport.objects.count() == 1
    assert Intake.objects.get().source == Intake.Channel.UPLOAD


def test_the_token_api_stores_a_tls_report(client, acme):
    _, secret = ApiToken.issue(acme, "relay")
    response = client.post(
        "/api/v1/intake", report(), content_type="application/json", headers={"authorization": f"Bearer {secret}"}
    )
    assert response.status_code == 201
    (outcome,) = response.json()["reports"]
    assert (outcome["kind"], outcome["status"], outcome["sessions"], outcome["failed_sessions"]) == (
        "tlsrpt",
        "stored",
        100,
        6,
    )


# --- HTTPS delivery (RFC 8460 section 3), through Django's test client; the live server test is in
# tests/intake/test_tlsrpt_https.py -----------------------------------------------------------------


def post(client, body: bytes, content_type: str = "application/tlsrpt+gzip"):
    return client.post("/tlsrpt/", body, content_type=content_type)


def test_the_endpoint_stores_a_report_once_and_answers_a_repeat_with_200(client, acme):
    response = post(client, gzip.compress(report()))
    assert response.status_code == 201 and response.json()["status"] == "stored"
    intake = Intake.objects.get()
    assert intake.source == Intake.Channel.HTTPS and intake.organization == acme
    assert post(client, gzip.compress(report())).status_code == 200
    assert post(client, report(), "application/tlsrpt+json").status_code == 200
    assert TlsReport.objects.count() == 1


def test_the_endpoint_refuses_a_domain_nobody_added_and_keeps_nothing(client, acme, settings):
    response = post(client, gzip.compress(report(domain="nobody.example")))
    assert response.status_code == 403
    assert "nobody.example" in response.json()["error"]
    assert not Intake.objects.exists() and not TlsReport.objects.exists()
    assert not any(settings.RAW_STORE_DIR.rglob("*")) if settings.RAW_STORE_DIR.exists() else True


def test_the_endpoint_answers_each_problem_with_its_status(client, acme, settings):
    settings.TLSRPT_MAX_BYTES = 16384
    assert client.get("/tlsrpt/").status_code == 405
    assert post(client, report(), "application/json").status_code == 415
    assert post(client, b"{" * 10 + b"}", "application/tlsrpt+json").status_code == 400
    from tests.support.builders import report_xml

    dmarc = post(client, report_xml(), "application/tlsrpt+json")
    assert dmarc.status_code == 400 and "only SMTP TLS reports" in dmarc.json()["error"]
    assert post(client, b"x" * 20000, "application/tlsrpt+json").status_code == 413
    bomb = gzip.compress(b'{"organization-name": "' + b"A" * 10_000_000 + b'"}')
    assert len(bomb) < 16384
    assert post(client, bomb).status_code == 400
    assert not Intake.objects.exists()


def test_the_endpoint_is_rate_limited_per_client(client, acme, settings, empty_cache):
    settings.TLSRPT_RATE_LIMIT = 2
    assert post(client, gzip.compress(report("a"))).status_code == 201
    assert post(client, gzip.compress(report("b"))).status_code == 201
    limited = post(client, gzip.compress(report("c")))
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert TlsReport.objects.count() == 2


def test_an_outcome_names_its_kind_in_the_json_lines(acme, tmp_path, capsys):
    path = tmp_path / "r.json"
    path.write_bytes(report())
    call_command("ingest", "--json", str(path))
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert (line["kind"], line["status"], line["sessions"]) == ("tlsrpt", "stored", 100)


def test_reports_of_two_organizations_posted_together_go_to_each(client, acme, globex):
    policies = [tls_policy("example.com", successful=3), tls_policy("globex.example", successful=4)]
    response = post(client, gzip.compress(report(policies=policies)))
    assert response.status_code == 201
    assert Intake.objects.get().organization is None  # shown to operators: it spans organizations
    assert dict(TlsReport.objects.values_list("policy_domain", "domain__organization__slug")) == {
        "example.com": "acme",
        "globex.example": "globex",
    }
    assert Organization.objects.count() == 2
