"""Rollups: kept at ingest, equal to the records they sum, never counted twice."""

import datetime

import pytest
from django.db.models import Sum

from reports.intake import claims, rollups
from reports.intake.pipeline import ingest_bytes
from reports.models import DailyDkim, DailySource, DailyTotal, Domain, Intake, Organization, Record, Report
from tests.support.builders import record_xml, report_email, report_xml

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

DAY = 1700000000  # 2023-11-14 22:13:20 UTC


def deliver(data: bytes):
    return ingest_bytes(data, source=Intake.Channel.CLI, name="r.xml")


@pytest.fixture
def domain(acme):
    return acme.domains.get()


def totals(model, **filters) -> int:
    return model.objects.filter(**filters).aggregate(total=Sum("messages"))["total"] or 0


def test_it_rolls_a_report_up_by_day_source_and_result(domain):
    deliver(
        report_xml(
            [
                record_xml(ip="192.0.2.1", count=10),
                record_xml(ip="192.0.2.1", count=5, header_from="Example.com"),
                record_xml(ip="2001:db8::5", count=7, dkim="fail", spf="fail", disposition="quarantine"),
                record_xml(ip="198.51.100.9", count=3, dkim="fail", reasons=(("forwarded", "list"),)),
            ]
        )
    )
    day = datetime.date(2023, 11, 14)
    assert totals(DailyTotal) == totals(DailySource) == 25
    assert DailyTotal.objects.filter(domain=domain, day=day).count() == 3
    passing = DailyTotal.objects.get(dkim="pass", spf="pass")
    assert (passing.messages, passing.records, passing.reporter, passing.header_from) == (
        15,
        2,
        "reporter.example",
        "example.com",
    )
    assert DailyTotal.objects.get(reason="forwarded").messages == 3
    source = DailySource.objects.get(source_ip="192.0.2.1")
    assert (source.day, source.messages, source.records) == (day, 15, 2)
    assert DailySource.objects.get(source_ip="2001:db8::5").disposition == "quarantine"


def test_it_adds_the_reports_of_one_day_together_and_ignores_duplicates(domain):
    first = report_xml([record_xml(count=10)], report_id="a")
    deliver(first)
    deliver(report_xml([record_xml(count=4)], report_id="b", org_name="other.example"))
    deliver(report_xml([record_xml(count=6)], report_id="c"))
    deliver(first)  # a duplicate: refused before any record is written
    assert Report.objects.count() == 3
    assert DailySource.objects.get().messages == 20
    assert totals(DailyTotal, reporter="reporter.example") == 16
    assert totals(DailyTotal, reporter="other.example") == 4


def test_it_sums_dkim_signatures_per_domain_selector_and_result(domain):
    deliver(
        report_xml(
            [
                record_xml(count=10, dkim_auth=(("Example.com", "s1", "pass"), ("esp.example", "k1", "pass"))),
                record_xml(ip="192.0.2.2", count=5, dkim_auth=(("example.com", "s1", "fail"),)),
                record_xml(ip="192.0.2.3", count=2, dkim_auth=()),
            ]
        )
    )
    rows = {(row.signing_domain, row.selector, row.result): row.messages for row in DailyDkim.objects.all()}
    assert rows == {
        ("example.com", "s1", "pass"): 10,
        ("esp.example", "k1", "pass"): 10,
        ("example.com", "s1", "fail"): 5,
    }


def test_it_keeps_quarantined_reports_out(domain):
    Organization.objects.update(unverified_reports=Organization.Unverified.QUARANTINE)
    deliver(report_email([("r.xml", "text/xml", report_xml([record_xml(count=9)]))]))
    assert Report.objects.get().quarantined
    assert not DailyTotal.objects.exists() and not DailySource.objects.exists()


def test_it_keeps_unclaimed_reports_out_until_claimed(domain):
    deliver(report_xml([record_xml(count=9)], domain="later.example"))
    assert not DailyTotal.objects.exists()
    claimed = Domain.objects.create(organization=domain.organization, name="later.example")
    assert claims.claim_reports(claimed) == 1
    assert totals(DailyTotal, domain=claimed) == totals(DailySource, domain=claimed) == 9


def test_a_rebuild_gives_the_same_rollups_as_ingest(domain):
    for index in range(3):
        deliver(
            report_xml(
                [record_xml(ip=f"192.0.2.{index}", count=index + 1), record_xml(count=2, dkim="fail", spf="fail")],
                report_id=f"r{index}",
                begin=DAY + index * 86400,
                end=DAY + index * 86400 + 86399,
            )
        )

    def snapshot():
        return sorted(DailySource.objects.values_list("day", "source_ip", "dkim", "messages", "records"))

    before = snapshot()
    assert rollups.rebuild(domain) == 3
    assert snapshot() == before
    assert totals(DailyTotal) == Record.objects.aggregate(total=Sum("count"))["total"] == 12
