"""Records are partitioned by month on PostgreSQL: a report's records sit in its month's partition,
a month without one goes to DEFAULT until the daily run gives it its own, and retention drops a
month whole once every report in it is due, leaving the dashboard's counts as they were."""

import datetime
import re

import psycopg
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from reports.dashboard import stats
from reports.dashboard.stats import Filters, Period
from reports.intake import partitions, retention
from reports.intake.pipeline import ingest_bytes
from reports.models import DailyDkim, DailySource, DailyTotal, Domain, Intake, Organization, Record, Report
from tests.support.builders import record_xml, report_xml

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
TODAY = datetime.datetime.now(UTC).date()
THIS_MONTH = partitions.month_of(TODAY)
PARTITION = re.compile(r"reports_record_(?:\d{4}_\d{2}|default)")


def months_ago(count: int) -> datetime.date:
    month = THIS_MONTH
    for _ in range(count):
        month = partitions.month_of(month - datetime.timedelta(days=1))
    return month


@pytest.fixture(autouse=True)
def postgres(request):
    if request.node.get_closest_marker("embedded") is None and connection.vendor != "postgresql":
        pytest.skip("partitions are PostgreSQL's; SQLite keeps one plain table")


@pytest.fixture
def acme(acme) -> Organization:
    """The shared Acme, keeping report records for 90 days."""
    acme.record_retention_days = 90
    acme.save()
    return acme


def store(organization: Organization | None, day: datetime.date, report_id: str, domain: str = "example.com") -> Report:
    """A report of three records beginning on ``day``, from ``organization``'s upload (None: an operator's import)."""
    begin = int(datetime.datetime.combine(day, datetime.time(), UTC).timestamp())
    xml = report_xml(
        [record_xml(ip=f"192.0.2.{n}", count=10 * n, header_from=domain) for n in (1, 2, 3)],
        org_name="google.com",
        email="noreply@google.com",
        report_id=report_id,
        begin=begin,
        end=begin + 86399,
        domain=domain,
    )
    source = Intake.Channel.UPLOAD if organization else Intake.Channel.CLI
    result = ingest_bytes(xml, source=source, name=f"{report_id}.xml", organization=organization)
    assert result.intake.status == Intake.Status.STORED, result.outcomes
    return Report.objects.get(report_id=report_id)


def partitions_of(report: Report) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT tableoid::regclass::text FROM reports_record WHERE report_id = %s", [report.pk])
        return {row[0] for row in cursor.fetchall()}


def table_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return cursor.fetchone()[0]


def rollups() -> list:
    return [list(model.objects.order_by("pk").values()) for model in (DailyTotal, DailySource, DailyDkim)]


def dashboard(domain_name: str, start: datetime.date) -> dict:
    domain = Domain.objects.get(name=domain_name)
    period = Period(start, TODAY)
    return {
        "summary": stats.summary(domain, period, Filters()),
        "overview": stats.overview(domain, period, Filters()),
        "sources": list(stats.source_rows(domain, period, Filters())),
    }


def other_session():
    """A second connection to the test database, as another process would hold one."""
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"], autocommit=False
    )


def test_it_has_a_partition_for_this_month_and_the_next_three(acme):
    report = store(acme, TODAY, "today")
    assert partitions_of(report) == {partitions.name_of(THIS_MONTH)}
    partitions.maintain()
    coming = [THIS_MONTH]
    for _ in range(partitions.MONTHS_AHEAD):
        coming.append(partitions.next_month(coming[-1]))
    assert set(coming) <= set(partitions.months())
    assert partitions.default_months() == []


def test_a_report_of_a_month_without_a_partition_lands_in_default_until_the_daily_run_gives_it_one(acme):
    old_month = months_ago(30)
    report = store(acme, old_month + datetime.timedelta(days=9), "old")
    ids = sorted(Record.objects.filter(report=report).values_list("pk", flat=True))
    assert partitions_of(report) == {partitions.DEFAULT}
    assert Record.objects.of_report(report).count() == 3

    assert partitions.maintain() == [partitions.name_of(old_month)]

    assert partitions_of(report) == {partitions.name_of(old_month)}
    assert sorted(Record.objects.of_report(report).values_list("pk", flat=True)) == ids
    assert partitions.default_months() == []
    assert partitions.maintain() == []  # nothing left to do


def test_a_new_month_brings_the_record_tables_statistics_up_to_date(acme):
    store(acme, months_ago(30), "old")

    def days_in_statistics() -> str:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT coalesce(string_agg(most_common_vals::text, ''), '') FROM pg_stats "
                "WHERE tablename = 'reports_record' AND attname = 'day' AND inherited"
            )
            return cursor.fetchone()[0]

    assert months_ago(30).isoformat() not in days_in_statistics()
    partitions.maintain()
    assert months_ago(30).isoformat() in days_in_statistics()


def test_a_report_claiming_the_last_month_there_is_stays_in_default(acme):
    report = store(acme, datetime.date(9999, 12, 30), "far")
    assert partitions.maintain() == []
    assert partitions_of(report) == {partitions.DEFAULT}


def test_retention_drops_a_whole_month_and_the_dashboard_counts_stay(acme):
    old = [
        store(acme, months_ago(6) + datetime.timedelta(days=9), "six-a"),
        store(acme, months_ago(6) + datetime.timedelta(days=19), "six-b"),
        store(acme, months_ago(5) + datetime.timedelta(days=2), "five"),
    ]
    recent = store(acme, TODAY, "recent")
    partitions.maintain()
    before_rollups, before = rollups(), dashboard("example.com", months_ago(6))
    assert before["summary"]["messages"] == 4 * 60

    counts = retention.apply()

    assert (counts["reports"], counts["records"]) == (3, 9)
    assert not table_exists(partitions.name_of(months_ago(6)))
    assert not table_exists(partitions.name_of(months_ago(5)))
    for report in old:
        report.refresh_from_db()
        assert report.records_purged_at is not None and not Record.objects.filter(report=report).exists()
    assert Record.objects.of_report(recent).count() == 3
    assert rollups() == before_rollups
    assert dashboard("example.com", months_ago(6)) == before


KEEPERS = ("an organization keeping records forever", "a longer retention", "a quarantined report", "no organization")


@pytest.mark.parametrize("keeper", KEEPERS)
def test_a_month_that_retention_keeps_a_report_of_stays_and_the_due_records_in_it_go_row_by_row(acme, globex, keeper):
    month = months_ago(6)
    due = store(acme, month + datetime.timedelta(days=4), "acme-due")
    alone = store(acme, months_ago(5) + datetime.timedelta(days=4), "acme-alone")
    if keeper == "no organization":
        kept = store(None, month + datetime.timedelta(days=5), "unclaimed", domain="nobody.example")
    elif keeper == "a quarantined report":
        kept = store(acme, month + datetime.timedelta(days=5), "quarantined")
        Report.objects.filter(pk=kept.pk).update(quarantined=True)
    else:
        kept = store(globex, month + datetime.timedelta(days=5), "globex", domain="globex.example")
        if keeper == "a longer retention":
            Organization.objects.filter(pk=globex.pk).update(record_retention_days=400)
    partitions.maintain()
    before_rollups = rollups()

    counts = retention.apply()

    assert (counts["reports"], counts["records"]) == (2, 6)
    assert partitions.name_of(month) in partitions.months().values()
    assert not table_exists(partitions.name_of(months_ago(5)))  # Acme's alone: dropped
    for report in (due, alone):
        report.refresh_from_db()
        assert report.records_purged_at is not None and not Record.objects.filter(report=report).exists()
    kept.refresh_from_db()
    assert kept.records_purged_at is None and Record.objects.of_report(kept).count() == 3
    assert rollups() == before_rollups


def falling_due(acme) -> tuple[Report, Report, datetime.datetime, datetime.datetime]:
    """Two reports of one past month, on its 1st and its 20th, and when each falls due (Acme keeps 90 days)."""
    month = months_ago(6)
    first, last = store(acme, month, "first"), store(acme, month + datetime.timedelta(days=19), "last")
    partitions.maintain()
    due = [report.end + datetime.timedelta(days=90, hours=1) for report in (first, last)]
    return first, last, due[0], due[1]


def test_without_slack_retention_deletes_a_months_rows_as_they_fall_due_and_drops_what_is_left(acme):
    first, last, first_due, last_due = falling_due(acme)

    assert retention.apply(first_due)["records"] == 3
    assert not Record.objects.filter(report=first).exists() and Record.objects.of_report(last).count() == 3

    assert retention.apply(last_due)["records"] == 3
    assert not table_exists(partitions.name_of(months_ago(6)))


def test_with_slack_retention_leaves_a_months_rows_for_its_drop(acme, settings):
    settings.RECORD_RETENTION_SLACK_DAYS = 31
    first, last, first_due, last_due = falling_due(acme)

    assert retention.apply(first_due)["records"] == 0
    assert Record.objects.of_report(first).count() == 3  # kept past its retention, at most the slack

    assert retention.apply(last_due)["records"] == 6
    assert not table_exists(partitions.name_of(months_ago(6)))
    assert Report.objects.filter(records_purged_at=None).count() == 0


def test_slack_does_not_keep_records_for_a_month_that_a_longer_retention_holds(acme, globex, settings):
    settings.RECORD_RETENTION_SLACK_DAYS = 31
    Organization.objects.filter(pk=globex.pk).update(record_retention_days=365)
    first, last, first_due, last_due = falling_due(acme)
    store(globex, months_ago(6) + datetime.timedelta(days=2), "globex", domain="globex.example")

    assert retention.apply(first_due)["records"] == 3
    assert not Record.objects.filter(report=first).exists()


def test_a_report_stored_between_the_first_look_and_the_drop_keeps_the_month(acme, globex, monkeypatch):
    month = months_ago(6)
    store(acme, month + datetime.timedelta(days=4), "acme")
    kept = store(globex, month + datetime.timedelta(days=5), "globex", domain="globex.example")
    partitions.maintain()
    looks = []
    real = partitions._kept

    def first_look_misses_it(month, now):
        """The first look runs before Globex's report was committed: it sees only Acme's."""
        looks.append(month)
        return False if len(looks) == 1 else real(month, now)

    monkeypatch.setattr(partitions, "_kept", first_look_misses_it)

    assert partitions.drop_expired(datetime.datetime.now(UTC)) == (0, 0, 0)

    assert len(looks) == 2  # looked again once the partition was detached, and kept it
    assert partitions.name_of(month) in partitions.months().values()
    kept.refresh_from_db()
    assert kept.records_purged_at is None and Record.objects.of_report(kept).count() == 3
    assert not Report.objects.exclude(records_purged_at=None).exists()


def test_a_month_that_cannot_be_moved_out_of_default_for_a_lock_waits_and_its_records_stay_readable(acme, monkeypatch):
    monkeypatch.setattr(partitions, "LOCK_TIMEOUT", "200ms")
    month = months_ago(30)
    report = store(acme, month + datetime.timedelta(days=1), "old")
    with other_session() as reader:
        reader.execute(f"LOCK TABLE ONLY {partitions.DEFAULT} IN ACCESS SHARE MODE")  # a long read of DEFAULT

        assert partitions.name_of(month) not in partitions.maintain()

    assert partitions_of(report) == {partitions.DEFAULT}
    assert Record.objects.of_report(report).count() == 3
    assert partitions.name_of(month) in partitions.maintain()  # the next run, with the reader gone
    assert partitions_of(report) == {partitions.name_of(month)}


def test_a_month_whose_drop_cannot_get_its_lock_is_emptied_row_by_row_instead(acme, monkeypatch):
    monkeypatch.setattr(partitions, "LOCK_TIMEOUT", "200ms")
    month = months_ago(6)
    report = store(acme, month + datetime.timedelta(days=1), "old")
    partitions.maintain()
    with other_session() as reader:
        reader.execute("LOCK TABLE ONLY reports_record IN ACCESS SHARE MODE")  # a long read of records

        counts = retention.apply()

    assert (counts["reports"], counts["records"]) == (1, 3)
    assert partitions.name_of(month) in partitions.months().values()  # the next run drops it, empty
    report.refresh_from_db()
    assert report.records_purged_at is not None and not Record.objects.filter(report=report).exists()


def test_a_role_that_does_not_own_the_records_leaves_partitions_alone_and_retention_deletes_rows(acme):
    report = store(acme, months_ago(6) + datetime.timedelta(days=1), "old")
    with connection.cursor() as cursor:
        cursor.execute("CREATE ROLE dmarcdash_app")  # undone with the test's transaction
        cursor.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO dmarcdash_app")
        cursor.execute("SET LOCAL ROLE dmarcdash_app")

        counts = retention.apply()

        cursor.execute("RESET ROLE")
    assert (counts["reports"], counts["records"]) == (1, 3)
    assert partitions.name_of(months_ago(6)) not in partitions.months().values()
    report.refresh_from_db()
    assert report.records_purged_at is not None and not Record.objects.filter(report=report).exists()


def explained(queryset) -> set[str]:
    return set(PARTITION.findall(queryset.explain()))


def test_a_reports_records_and_a_periods_are_read_from_their_months_partitions_only(acme):
    partitions.maintain()
    report = store(acme, TODAY, "today")
    assert explained(Record.objects.of_report(report).order_by("-count", "id")) == {partitions.name_of(THIS_MONTH)}
    this_month = Record.objects.between(THIS_MONTH, TODAY).filter(source_ip="192.0.2.1")
    assert explained(this_month) == {partitions.name_of(THIS_MONTH)}
    # Without a day, every month is read: what the day filters save.
    assert len(explained(Record.objects.filter(report=report))) == len(partitions.months()) + 1


def test_every_partition_has_the_record_indexes(acme):
    store(acme, months_ago(30), "old")
    partitions.maintain()
    names = [*partitions.months().values(), partitions.DEFAULT]
    with connection.cursor() as cursor:
        for name in names:
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", [name])
            found = {re.sub(r"^.* USING btree ", "", row[0]) for row in cursor.fetchall()}
            assert found == {"(id, day)", "(source_ip, report_id) INCLUDE (count, dkim, spf)", "(report_id)"}, name


@pytest.mark.embedded
def test_records_carry_the_utc_day_their_report_begins(acme):
    late = datetime.datetime(2023, 11, 14, 23, 30, tzinfo=UTC)
    xml = report_xml([record_xml()], begin=int(late.timestamp()), end=int(late.timestamp()) + 86399)
    ingest_bytes(xml, source=Intake.Channel.UPLOAD, name="late.xml", organization=acme)
    report = Report.objects.get()
    assert report.day == datetime.date(2023, 11, 14)
    assert list(Record.objects.values_list("day", flat=True)) == [report.day]
    assert list(DailyTotal.objects.values_list("day", flat=True)) == [report.day]


@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_every_record_into_its_months_partition_and_back():
    before, partitioned = ("reports", "0020_intake_source_lmtp"), ("reports", "0021_record_partitions")
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate([before])
    try:
        old = executor.loader.project_state([before]).apps
        report, record = old.get_model("reports", "Report"), old.get_model("reports", "Record")
        days = {months_ago(2) + datetime.timedelta(days=27): "a", TODAY: "b"}
        ids = {}
        for day, name in days.items():
            begin = datetime.datetime.combine(day, datetime.time(23, 59), UTC)
            stored = report.objects.create(
                fingerprint=name, format="legacy", report_id=name, begin=begin, end=begin, policy_domain="x.example"
            )
            ids[day] = [record.objects.create(report=stored, source_ip="192.0.2.1", count=n).pk for n in (1, 2)]

        executor = MigrationExecutor(connection)
        executor.migrate([partitioned])
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, day, tableoid::regclass::text FROM reports_record ORDER BY id")
            assert cursor.fetchall() == [
                (pk, day, partitions.name_of(partitions.month_of(day))) for day, pks in ids.items() for pk in pks
            ]
            cursor.execute(
                "SELECT count(*) FROM pg_constraint WHERE conrelid = 'reports_record'::regclass AND contype = 'f'"
            )
            assert cursor.fetchone() == (0,)
            cursor.execute("SELECT pg_get_indexdef('reports_record_pkey'::regclass)")
            assert cursor.fetchone()[0].endswith("(id, day)")

        executor = MigrationExecutor(connection)
        executor.migrate([before])
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM reports_record ORDER BY id")
            assert [row[0] for row in cursor.fetchall()] == [pk for pks in ids.values() for pk in pks]
            cursor.execute("SELECT relkind FROM pg_class WHERE oid = 'reports_record'::regclass")
            assert cursor.fetchone() == ("r",)
            next_record = record.objects.create(report=report.objects.first(), source_ip="192.0.2.1", count=3)
            assert next_record.pk > max(pk for pks in ids.values() for pk in pks)
    finally:
        MigrationExecutor(connection).migrate(latest)
