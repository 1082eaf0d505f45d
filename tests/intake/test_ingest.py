"""Ingest: ledger first, one transaction per report, the database decides what is a duplicate."""

import zipfile

import pytest

from reports.intake import claims, rawstore
from reports.intake.pipeline import ingest_bytes, process_intake
from reports.lib.parsing import Limits
from reports.models import Domain, Intake, Organization, Record, Report
from tests.support.builders import gzipped, record_xml, report_email, report_xml, zipped

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def deliver(data: bytes, name: str = "r.xml", **kwargs):
    return ingest_bytes(data, source=Intake.Channel.CLI, name=name, **kwargs)


def test_it_stores_a_report_with_its_records_and_totals():
    data = report_xml(
        [
            record_xml(ip="192.0.2.1", count=10),
            record_xml(ip="2001:db8::5", count=5, dkim="fail", spf="fail", disposition="quarantine"),
        ],
        policy="<p>quarantine</p><sp>reject</sp><pct>50</pct><fo>1</fo>",
    )
    result = deliver(data)
    (outcome,) = result.outcomes
    assert (outcome.status, outcome.records, outcome.messages) == ("stored", 2, 15)
    report = Report.objects.get()
    assert (report.record_count, report.message_count, report.pass_count) == (2, 15, 10)
    assert (report.p, report.sp, report.pct, report.fo, report.format) == ("quarantine", "reject", 50, "1", "legacy")
    assert report.intake == result.intake
    assert sorted(Record.objects.values_list("source_ip", "count")) == [("192.0.2.1", 10), ("2001:db8::5", 5)]
    record = report.records.get(count=5)
    assert (record.disposition, record.dkim, record.spf, record.passed) == ("quarantine", "fail", "fail", False)
    assert record.dkim_results == [{"domain": "example.com", "selector": "s1", "result": "pass"}]


def test_it_records_the_input_in_the_ledger_and_keeps_the_raw_bytes():
    data = gzipped(report_xml())
    intake = deliver(data, name="r.xml.gz").intake
    intake.refresh_from_db()
    assert (intake.status, intake.size, intake.reports_stored, intake.error) == ("stored", len(data), 1, "")
    assert intake.processed_at is not None
    with rawstore.open_raw(intake.sha256) as raw:
        assert raw.read() == data


def test_it_stores_a_redelivered_report_once_and_records_the_duplicate():
    deliver(report_xml())
    second = deliver(gzipped(report_xml()), name="again.xml.gz")
    assert [o.status for o in second.outcomes] == ["duplicate"]
    assert second.intake.status == "duplicate"
    assert Report.objects.count() == 1
    assert Record.objects.count() == 1
    assert Intake.objects.count() == 2


def test_it_tells_reports_apart_by_reporter_and_date_range():
    deliver(report_xml(report_id="same"))
    deliver(report_xml(report_id="same", org_name="other.example", email="x@other.example"))
    deliver(report_xml(report_id="same", begin=1700086400, end=1700172799))
    assert Report.objects.count() == 3


def test_it_rolls_back_a_report_that_breaks_part_way_and_goes_on_with_the_next():
    broken = report_xml([record_xml()] * 10).replace(b"</feedback>", b"<record><row>")
    data = zipped({"broken.xml": broken, "good.xml": report_xml(report_id="good")})
    result = deliver(data, name="two.zip")
    assert [o.status for o in result.outcomes] == ["refused", "stored"]
    assert "XML" in result.outcomes[0].reason
    assert list(Report.objects.values_list("report_id", flat=True)) == ["good"]
    assert Record.objects.count() == 1
    assert result.intake.status == "partial"
    assert "two.zip/broken.xml:" in result.intake.error


def test_it_records_a_refused_input_with_its_reason():
    result = deliver(b"<html>not a report</html>", name="page.html")
    assert result.intake.status == "refused"
    assert result.intake.error == "page.html: not a DMARC aggregate report: no <feedback> element found"
    assert not Report.objects.exists()


def test_it_replays_a_refused_input_once_the_cause_is_fixed():
    result = deliver(report_xml([record_xml()] * 5), caps=Limits(max_records=3))
    assert result.intake.status == "refused"
    assert "more than 3 records" in result.intake.error
    assert not Record.objects.exists()
    replay = process_intake(result.intake, Limits())
    assert replay.intake.status == "stored"
    assert replay.intake.error == ""
    assert Record.objects.count() == 5


def test_it_keeps_reports_for_unclaimed_domains_and_attaches_them_when_claimed():
    deliver(report_xml(domain="unclaimed.example"))
    report = Report.objects.get()
    assert report.domain is None
    assert list(Report.objects.unclaimed()) == [report]
    organization = Organization.objects.create(name="Acme", slug="acme")
    domain = Domain.objects.create(organization=organization, name="Unclaimed.Example.")
    assert domain.name == "unclaimed.example"
    assert claims.claim_reports(domain) == 1
    assert not Report.objects.unclaimed().exists()
    deliver(report_xml(domain="unclaimed.example", report_id="later"))
    assert Report.objects.get(report_id="later").domain == domain


def test_it_stores_attacker_controlled_text_exactly():
    nasty = 'tab\there\\N "quoted" \\ back\\slash \u202e<script>alert(1)</script> \U0001f4a9'
    xml_text = nasty.replace("&", "&amp;").replace("<", "&lt;")
    record = record_xml(header_from="x.example", reasons=(("other", xml_text),))
    record = record.replace("<header_from>x.example", f"<header_from>{xml_text}")
    deliver(report_xml([record], org_name=xml_text))
    stored = Record.objects.get()
    assert stored.header_from == nasty.lower()
    assert stored.reasons == [{"type": "other", "comment": nasty}]
    assert Report.objects.get().org_name == nasty


@pytest.mark.django_db(transaction=True)
def test_two_workers_delivering_the_same_report_at_once_store_it_once():
    import threading

    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; concurrent workers are a Postgres deployment")

    barrier = threading.Barrier(4)
    outcomes = []

    def worker():
        barrier.wait()
        outcomes.extend(o.status for o in deliver(report_xml([record_xml()] * 50), name="same.xml").outcomes)
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["duplicate", "duplicate", "duplicate", "stored"]
    assert Report.objects.count() == 1
    assert Record.objects.count() == 50


def test_it_processes_every_member_of_a_large_zip_in_its_own_transaction():
    members = {f"r{i}.xml": report_xml(report_id=f"r{i}", records=[record_xml()] * 3) for i in range(5)}
    result = deliver(zipped(members, zipfile.ZIP_DEFLATED), name="many.zip")
    assert [o.status for o in result.outcomes] == ["stored"] * 5
    assert Record.objects.count() == 15


def test_it_replays_refused_inputs_from_the_command_line(settings):
    import io

    from django.core.management import call_command

    settings.DMARC_LIMITS = {**settings.DMARC_LIMITS, "max_records": 2}
    refused = deliver(report_xml([record_xml()] * 3)).intake
    stored = deliver(report_xml(report_id="fine")).intake
    settings.DMARC_LIMITS = {**settings.DMARC_LIMITS, "max_records": 10}
    out = io.StringIO()
    call_command("replay", refused=True, stdout=out)
    assert out.getvalue() == f"intake {refused.pk} r.xml: stored (3 records)\n"
    refused.refresh_from_db()
    assert refused.status == "stored"
    stored.refresh_from_db()
    assert stored.status == "stored"


def test_it_does_not_let_one_tenant_plant_reports_in_another_tenants_domain():
    acme = Organization.objects.create(name="Acme", slug="acme")
    globex = Organization.objects.create(name="Globex", slug="globex")
    domain = Domain.objects.create(organization=acme, name="acme.example")
    deliver(report_xml(domain="acme.example", report_id="own"), organization=acme)
    deliver(report_xml(domain="acme.example", report_id="planted"), organization=globex)
    deliver(report_xml(domain="later.example", report_id="early-planted"), organization=globex)
    deliver(report_xml(domain="later.example", report_id="operator-import"))
    assert Report.objects.get(report_id="own").domain == domain
    assert Report.objects.get(report_id="planted").domain is None
    later = Domain.objects.create(organization=acme, name="later.example")
    assert claims.claim_reports(later) == 1
    assert Report.objects.get(report_id="operator-import").domain == later
    assert Report.objects.get(report_id="early-planted").domain is None


def signed_report_email(key, signer: str, reporter: str = "noreply-dmarc-support@google.com", **report) -> bytes:
    from tests.support.dkimkeys import sign

    xml = report_xml(org_name="google.com", email=reporter, **report)
    message = report_email([("google.com!example.com!1!2.zip", "application/zip", zipped({"r.xml": xml}))])
    message = message.replace(b"\n", b"\r\n")
    return sign(message, signer, key)


@pytest.fixture(scope="module")
def key():
    from tests.support.dkimkeys import generate_key

    return generate_key()


def test_it_labels_a_report_email_signed_by_its_reporter_verified(key, dns_zone):
    dns_zone.add("s1._domainkey.google.com", "TXT", key.record)
    deliver(signed_report_email(key, "google.com"), name="google.eml")
    report = Report.objects.get()
    assert report.authenticity == "verified"
    assert "verified" in report.authenticity_detail and not report.quarantined


def test_the_dkim_key_lookup_asks_the_configured_dns_resolver(key, dns_server, settings):
    """DNS_RESOLVER is the server asked for report emails' DKIM dns_zone, as for every other lookup."""
    dns_server.add("s1._domainkey.google.com", "TXT", key.record)
    settings.DNS_RESOLVER = f"127.0.0.1:{dns_server.port}"
    deliver(signed_report_email(key, "google.com"), name="google.eml")
    assert dns_server.queries[("s1._domainkey.google.com", "TXT")] >= 1
    assert Report.objects.get().authenticity == "verified"


def test_it_labels_forged_and_unsigned_report_emails(key, dns_zone):
    dns_zone.add("s1._domainkey.attacker.example", "TXT", key.record)
    deliver(signed_report_email(key, "attacker.example", report_id="forged"), name="forged.eml")
    deliver(report_email([("r.xml", "text/xml", report_xml(report_id="plain"))]), name="plain.eml")
    deliver(report_xml(report_id="file"), name="file.xml")
    labels = dict(Report.objects.values_list("report_id", "authenticity"))
    assert labels == {"forged": "mismatch", "plain": "unsigned", "file": ""}
    assert "attacker.example" in Report.objects.get(report_id="forged").authenticity_detail


def test_it_quarantines_unverified_reports_when_the_organization_asks(key):
    acme = Organization.objects.create(name="Acme", slug="acme", unverified_reports="quarantine")
    Domain.objects.create(organization=acme, name="example.com")
    deliver(report_email([("r.xml", "text/xml", report_xml(report_id="plain"))]), name="plain.eml")
    assert Report.objects.get().quarantined


def test_it_round_trips_copy_special_characters_in_every_text_column():
    nasty = "a\tb\nc\rd\\e\\.\\N \u2028 \x01"
    escaped = nasty.replace("&", "&amp;").replace("<", "&lt;").replace("\r", "&#13;").replace("\x01", "")
    record = record_xml(header_from="x.example", dkim_auth=(("example.com", escaped, "pass"),))
    deliver(report_xml([record], report_id="copy"))
    stored = Record.objects.get()
    assert stored.dkim_results[0]["selector"] == nasty.replace("\x01", "").strip()


def test_it_cuts_an_overlong_unknown_value_to_its_column_instead_of_failing():
    result = deliver(report_xml([record_xml(disposition="x" * 300)]))
    assert result.outcomes[0].status == "stored"
    assert Record.objects.get().disposition == "x" * 20


def test_a_second_try_of_an_input_that_failed_finishes_its_ledger_row(monkeypatch):
    from django.db import OperationalError

    from reports.intake import pipeline

    real = pipeline.store_document

    def locked(*args, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(pipeline, "store_document", locked)
    first = deliver(report_xml(), name="week.xml")
    assert first.intake.status == "failed"
    assert "database is locked" in first.intake.error
    monkeypatch.setattr(pipeline, "store_document", real)
    second = deliver(report_xml(), name="week.xml")
    assert second.intake.pk == first.intake.pk
    assert (second.intake.status, second.intake.error) == ("stored", "")
    assert Intake.objects.count() == 1
    assert Report.objects.count() == 1
