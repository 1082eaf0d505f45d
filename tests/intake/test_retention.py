"""Retention removes old records and raw inputs, and the dashboard does not notice: its counts
come from the daily rollups, which stay row for row."""

import datetime
import io

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from reports import tasks
from reports.dashboard import stats
from reports.dashboard.stats import Filters, Period
from reports.intake import rawstore, retention
from reports.intake.pipeline import ingest_bytes
from reports.models import DailyDkim, DailySource, DailyTotal, Domain, Intake, Membership, Organization, Record, Report
from tests.support import rawdata
from tests.support.builders import record_xml, report_xml

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

UTC = datetime.UTC
NOW = datetime.datetime.now(UTC)
TODAY = NOW.date()
# A report every week over 200 days; none ends within a day of either cutoff (90 and 30 days).
DAYS_AGO = list(range(3, 200, 7))
SHARED_DAY = 199  # these bytes also reached Globex, which keeps its raw inputs
NOTHING = dict.fromkeys(
    ("organizations", "reports", "records", "inputs", "blobs", "failures", "rollups_folded", "rollups_removed"), 0
)


def report_bytes(days_ago: int) -> bytes:
    begin = int(datetime.datetime.combine(TODAY - datetime.timedelta(days=days_ago), datetime.time(), UTC).timestamp())
    records = [
        record_xml(ip="192.0.2.10", count=100 + days_ago),
        record_xml(ip="198.51.100.7", count=40, spf="fail"),
        record_xml(
            ip="203.0.113.66",
            count=days_ago % 11 + 1,
            dkim="fail",
            spf="fail",
            disposition="quarantine",
            dkim_auth=(("spoof.example", "x", "fail"),),
        ),
    ]
    return report_xml(
        records,
        org_name="google.com",
        email="noreply@google.com",
        report_id=f"r-{days_ago}",
        begin=begin,
        end=begin + 86399,
    )


def age(intake: Intake, when: datetime.datetime) -> None:
    """As if the input had arrived at ``when``: its ledger row and its file are that old."""
    Intake.objects.filter(pk=intake.pk).update(received_at=when)
    rawdata.set_written_at(intake.sha256, when)


@pytest.fixture
def acme():
    organization = Organization.objects.create(name="Acme", slug="acme")
    domain = Domain.objects.create(organization=organization, name="example.com")
    for days_ago in DAYS_AGO:
        result = ingest_bytes(
            report_bytes(days_ago), source=Intake.Channel.UPLOAD, name=f"{days_ago}.xml", organization=organization
        )
        assert result.intake.status == Intake.Status.STORED
        age(result.intake, Report.objects.get(intake=result.intake).end)
    globex = Organization.objects.create(name="Globex", slug="globex")
    shared = ingest_bytes(report_bytes(SHARED_DAY), source=Intake.Channel.UPLOAD, name="same.xml", organization=globex)
    assert shared.intake.status == Intake.Status.DUPLICATE
    organization.record_retention_days = 90
    organization.raw_retention_days = 30
    organization.save()
    return domain


@pytest.fixture
def viewer(client, acme):
    user = User.objects.create_user("viewer", password="x")
    Membership.objects.create(user=user, organization=acme.organization, role=Membership.Role.VIEWER)
    client.force_login(user)
    return client


def rollups() -> list:
    return [list(model.objects.order_by("pk").values()) for model in (DailyTotal, DailySource, DailyDkim)]


WHOLE = Period(TODAY - datetime.timedelta(days=199), TODAY)
LAST_90 = Period.last(90)


def dashboard_numbers(domain: Domain, client) -> dict:
    cache.clear()  # nothing the first look cached may answer the second
    numbers = {}
    for label, period in (("90", LAST_90), ("200", WHOLE)):
        numbers[f"summary-{label}"] = stats.summary(domain, period, Filters())
        numbers[f"overview-{label}"] = stats.overview(domain, period, Filters())
        numbers[f"reporters-{label}"] = stats.breakdown(domain, period, Filters(), "reporter")
        numbers[f"sources-{label}"] = list(stats.source_rows(domain, period, Filters()))
        numbers[f"dkim-{label}"] = stats.dkim_signatures(domain, period)
    for label, query in (("90", "days=90"), ("200", f"from={WHOLE.start}&to={WHOLE.end}")):
        page = client.get(f"/domains/{domain.name}/?{query}")
        assert page.status_code == 200
        numbers[f"page-{label}"] = page.context["totals"]
        numbers[f"page-{label}-days"] = page.context["charts"]["per-day"]
    return numbers


def expected_messages(days: list[int]) -> int:
    return sum(100 + d + 40 + d % 11 + 1 for d in days)


def test_retention_removes_old_records_and_raw_inputs_but_not_a_single_count(acme, viewer):
    domain = acme
    before_rollups = rollups()
    before = dashboard_numbers(domain, viewer)
    assert before["summary-200"]["messages"] == expected_messages(DAYS_AGO)
    assert before["summary-90"]["messages"] == expected_messages([d for d in DAYS_AGO if d < 90])
    assert 0 < before["summary-200"]["passing_rate"] < 1
    assert before["page-200"]["messages"] == before["summary-200"]["messages"]
    old = [d for d in DAYS_AGO if d > 90]
    old_raw = [d for d in DAYS_AGO if d > 30]
    shared_sha = Intake.objects.get(name=f"{SHARED_DAY}.xml").sha256

    counts = retention.apply()

    assert counts == {
        "organizations": 1,
        "reports": len(old),
        "records": 3 * len(old),
        "inputs": len(old_raw),
        "blobs": len(old_raw) - 1,  # the bytes Globex also received stay
        "failures": 0,
        "rollups_folded": 0,  # every report is inside the 400 days kept by day
        "rollups_removed": 0,
    }
    for days_ago in DAYS_AGO:
        report = Report.objects.get(report_id=f"r-{days_ago}")
        intake = report.intake
        if days_ago > 90:
            assert report.records_purged_at is not None and not Record.objects.filter(report=report).exists()
            assert report.record_count == 3 and report.message_count  # the report's own totals stay
        else:
            assert report.records_purged_at is None and Record.objects.filter(report=report).count() == 3
        if days_ago > 30:
            assert intake.raw_purged_at is not None
            assert rawstore.exists(intake.sha256) == (intake.sha256 == shared_sha), days_ago
        else:
            assert intake.raw_purged_at is None and rawstore.exists(intake.sha256)
    globex_input = Intake.objects.get(organization__slug="globex")
    assert globex_input.raw_purged_at is None and rawstore.exists(globex_input.sha256)

    assert rollups() == before_rollups
    assert dashboard_numbers(domain, viewer) == before

    # A second run finds nothing left to do.
    assert retention.apply() == {**NOTHING, "organizations": 1}
    assert rollups() == before_rollups


def test_an_old_report_says_its_records_are_gone_and_its_xml_answers_410(acme, viewer):
    retention.apply()
    old = Report.objects.get(report_id="r-94")
    page = viewer.get(f"/reports/{old.pk}/")
    assert page.status_code == 200
    assert b"Records removed by retention on" in page.content
    assert b"the counts above come from the daily totals" in page.content
    assert b"Download the XML" not in page.content
    gone = viewer.get(f"/reports/{old.pk}/report.xml")
    assert gone.status_code == 410 and b"removed" in gone.content
    # The shared bytes are still on disk, but Acme's retention removed them for Acme.
    shared = Report.objects.get(report_id=f"r-{SHARED_DAY}")
    assert viewer.get(f"/reports/{shared.pk}/report.xml").status_code == 410

    recent = Report.objects.get(report_id="r-3")
    page = viewer.get(f"/reports/{recent.pk}/")
    assert b"Records removed" not in page.content and b"192.0.2.10" in page.content
    download = viewer.get(f"/reports/{recent.pk}/report.xml")
    assert download.status_code == 200 and b"<report_id>r-3</report_id>" in b"".join(download.streaming_content)

    # Records kept (day 59) but raw gone: the page still lists the records, without the download.
    middle = Report.objects.get(report_id="r-59")
    page = viewer.get(f"/reports/{middle.pk}/")
    assert b"Records removed" not in page.content and b"Download the XML" not in page.content
    assert viewer.get(f"/reports/{middle.pk}/report.xml").status_code == 410


def test_a_purged_input_is_not_replayed(acme, client):
    retention.apply()
    user = User.objects.create_user("admin", password="x")
    Membership.objects.create(user=user, organization=acme.organization, role=Membership.Role.ADMIN)
    client.force_login(user)
    intake = Intake.objects.get(name="94.xml")
    response = client.post(f"/ingestion/{intake.pk}/replay/")
    assert response.status_code == 410 and b"cannot be replayed" in response.content
    intake.refresh_from_db()
    assert intake.status == Intake.Status.STORED  # not turned into a failure
    # Nor by the command, even when the input is among the refused ones it is told to replay.
    Intake.objects.filter(pk=intake.pk).update(status=Intake.Status.PARTIAL)
    out = io.StringIO()
    call_command("replay", "--refused", stdout=out)
    assert f"intake {intake.pk} skipped: its raw bytes were removed" in out.getvalue()
    intake.refresh_from_db()
    assert intake.status == Intake.Status.PARTIAL
    # The ledger shows why instead of a Replay button.
    page = client.get("/ingestion/").content.decode()
    assert f'action="/ingestion/{intake.pk}/replay/"' not in page and "raw bytes removed" in page


def test_quarantined_reports_and_unprocessed_inputs_keep_what_they_have(acme):
    quarantined = Report.objects.get(report_id="r-199")
    Report.objects.filter(pk=quarantined.pk).update(quarantined=True)
    waiting = Intake.objects.get(name="94.xml")
    Intake.objects.filter(pk=waiting.pk).update(status=Intake.Status.RECEIVED)
    retention.apply()
    quarantined.refresh_from_db()
    waiting.refresh_from_db()
    assert quarantined.records_purged_at is None and quarantined.records.count() == 3
    assert waiting.raw_purged_at is None and rawstore.exists(waiting.sha256)


def test_a_file_written_again_just_now_is_kept(acme):
    """Ingest writes the bytes before its ledger row: fresh bytes may be about to be needed."""
    intake = Intake.objects.get(name="94.xml")
    rawdata.set_written_at(intake.sha256, timezone.now())
    retention.apply()
    intake.refresh_from_db()
    assert intake.raw_purged_at is not None and rawstore.exists(intake.sha256)


def test_no_retention_keeps_everything(acme):
    Organization.objects.filter(pk=acme.organization_id).update(record_retention_days=0, raw_retention_days=0)
    assert retention.apply() == NOTHING
    assert not Report.objects.exclude(records_purged_at=None).exists()
    assert not Intake.objects.exclude(raw_purged_at=None).exists()


def test_the_task_and_the_command_apply_it(acme):
    assert tasks.apply_retention()["reports"] == len([d for d in DAYS_AGO if d > 90])
    out = io.StringIO()
    call_command("apply_retention", stdout=out)
    assert "0 records removed from 0 reports" in out.getvalue()
    assert "1 organizations with retention" in out.getvalue()
    assert "0 daily rollup rows folded into months, 0 removed" in out.getvalue()
