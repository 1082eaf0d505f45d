"""Monthly partitions of the record table on PostgreSQL (SQLite keeps one plain table).

Records are partitioned by ``day``, the UTC day their report begins: one partition per calendar
month, named reports_record_YYYY_MM, and a DEFAULT partition that takes the records of any month
without one, so ingest never waits for, or fails on, a missing partition.

1. ``maintain`` (daily, from the retention run) creates the current month and the next
   MONTHS_AHEAD, and gives each month found in the DEFAULT partition (an old report imported,
   a reporter's clock far off) a partition of its own, moving its records there.
2. ``drop_expired`` (retention) detaches and drops a past month when every report with records
   in it is past its organization's record retention, and marks those reports
   ``records_purged_at``. A month holding a report that retention keeps (its organization keeps
   records longer or forever, it is quarantined, its domain is unclaimed) stays, and retention
   deletes the due records in it row by row.
3. Day by day, retention would find a month's reports due one day at a time and delete them row by
   row before the month could go whole. ``due_within`` names the past months that will go whole
   within RECORD_RETENTION_SLACK_DAYS, whose rows retention leaves for the drop: records are then
   kept up to that many days past their retention, and steady-state retention is a drop a month.

Each change waits at most LOCK_TIMEOUT for its locks, then gives up until the next run: a
waiting ALTER TABLE would queue every reader of the records behind it. A database role that does
not own the record table cannot change partitions at all: that is logged as an error, and nothing
fails for it (records go to DEFAULT, retention deletes rows). A new month is created
as a table of its own and then attached, which locks the record table less than CREATE TABLE
... PARTITION OF (readers and writers of other months go on).
"""

import datetime
import logging
import re

from django.db import DatabaseError, connection, transaction
from django.db.models import Sum

from reports.models import Domain, Organization, Record, Report

log = logging.getLogger(__name__)

TABLE = Record._meta.db_table
DEFAULT = f"{TABLE}_default"
MONTHS_AHEAD = 3
LOCK_TIMEOUT = "3s"
# What leaves a partition as it is, the records where they are, until the next run.
GAVE_UP = {
    "55P03": "its lock was not had in time",
    "40P01": "it deadlocked",
    "42501": f"this database role may not: it takes the owner of {TABLE}",
}
# Its end, 10000-01-01, is past Python's dates: a report claiming it keeps its records in DEFAULT.
LAST_MONTH = datetime.date(9999, 12, 1)
BOUND = re.compile(r"FOR VALUES FROM \('(\d{4}-\d{2}-\d{2})'\) TO \('(\d{4}-\d{2}-\d{2})'\)")
UTC = datetime.UTC


def month_of(day: datetime.date) -> datetime.date:
    return day.replace(day=1)


def next_month(month: datetime.date) -> datetime.date:
    return (month + datetime.timedelta(days=32)).replace(day=1)


def name_of(month: datetime.date) -> str:
    return f"{TABLE}_{month:%Y_%m}"


def enabled() -> bool:
    """Whether the record table is partitioned: PostgreSQL, migrated."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s)", [TABLE])
        return cursor.fetchone() is not None


def months() -> dict[datetime.date, str]:
    """The month partitions attached to the record table: their first day -> their name."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
            [TABLE],
        )
        rows = cursor.fetchall()
    found = {}
    for name, bound in rows:
        match = BOUND.fullmatch(bound)
        if match:  # DEFAULT, or a range someone made by hand that is not one month: not ours
            start, end = (datetime.date.fromisoformat(text) for text in match.groups())
            if start.day == 1 and end == next_month(start):
                found[start] = name
    return found


def default_months() -> list[datetime.date]:
    """The months of the records in the DEFAULT partition (normally none)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT date_trunc('month', day::timestamp)::date FROM {DEFAULT} ORDER BY 1")  # noqa: S608
        return [row[0] for row in cursor.fetchall()]


def maintain(today: datetime.date | None = None) -> list[str]:
    """Create the months to come and move months out of the DEFAULT partition; return the
    partitions created (a month whose locks could not be had is left to the next run)."""
    if not enabled():
        return []
    today = today or datetime.datetime.now(UTC).date()
    wanted = set(default_months())
    month = month_of(today)
    for _ in range(MONTHS_AHEAD + 1):
        wanted.add(month)
        month = next_month(month)
    wanted.discard(LAST_MONTH)
    created = [name_of(month) for month in sorted(wanted - months().keys()) if _create(month)]
    if created:
        log.info("partitions: created %s", ", ".join(created))
        # Autovacuum analyzes each partition but never the partitioned table itself, whose
        # statistics plan the queries that span months; a new month is a good time (10 s at 10M records).
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(TABLE)}")
    return created


def _create(month: datetime.date) -> bool:
    name, end = name_of(month), next_month(month)
    q = connection.ops.quote_name
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [LOCK_TIMEOUT])
            # Attaching scans the DEFAULT partition under this lock anyway; taking it first means
            # no lock is upgraded halfway through, where it could deadlock with a writer.
            cursor.execute(f"LOCK TABLE {q(DEFAULT)} IN ACCESS EXCLUSIVE MODE")
            cursor.execute(f"CREATE TABLE {q(name)} (LIKE {q(TABLE)} INCLUDING CONSTRAINTS)")
            cursor.execute(
                f"WITH moved AS (DELETE FROM {q(DEFAULT)} WHERE day >= %s AND day < %s RETURNING *) "  # noqa: S608
                f"INSERT INTO {q(name)} SELECT * FROM moved",
                [month, end],
            )
            if cursor.rowcount:
                log.info("partitions: %d records of %s moved out of %s", cursor.rowcount, f"{month:%Y-%m}", DEFAULT)
            cursor.execute(
                f"ALTER TABLE {q(TABLE)} ATTACH PARTITION {q(name)} FOR VALUES FROM (%s) TO (%s)", [month, end]
            )
    except DatabaseError as exc:
        if _gave_up(exc, f"creating {name}"):
            return False
        raise
    return True


def due_within(now: datetime.datetime, slack: datetime.timedelta) -> list[datetime.date]:
    """The past month partitions whose every report will be past retention within ``slack``."""
    if not slack or not enabled():
        return []
    today = now.astimezone(UTC).date()
    return [month for month in sorted(months()) if next_month(month) <= today and not _kept(month, now + slack)]


def drop_expired(now: datetime.datetime) -> tuple[int, int, int]:
    """Drop every past month partition that retention has wholly passed; return (partitions,
    reports marked, records removed)."""
    if not enabled():
        return 0, 0, 0
    today = now.astimezone(UTC).date()
    dropped = reports = records = 0
    for month in sorted(months()):
        if next_month(month) > today or _kept(month, now):
            continue
        done = drop_month(month, now)
        if done is not None:
            dropped += 1
            reports += done[0]
            records += done[1]
    if dropped:
        log.info("partitions: %d months dropped, %d records of %d reports", dropped, records, reports)
    return dropped, reports, records


def span(month: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    """The report begins whose records are in ``month``'s partition: [first, last)."""
    return (
        datetime.datetime.combine(month, datetime.time(), UTC),
        datetime.datetime.combine(next_month(month), datetime.time(), UTC),
    )


def _kept(month: datetime.date, now: datetime.datetime) -> bool:
    """Whether a report of ``month`` still has records that retention keeps (reports/intake/retention.py's
    rule: its organization's record_retention_days set, passed since the report's end, and not
    quarantined)."""
    start, end = span(month)
    report, domain, organization = (model._meta.db_table for model in (Report, Domain, Organization))
    with connection.cursor() as cursor:
        # In seconds, not as now - interval: a retention of more days than the calendar has
        # keeps everything instead of overflowing.
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {report} r "  # noqa: S608 (names are ours)
            f"LEFT JOIN {domain} d ON d.id = r.domain_id LEFT JOIN {organization} o ON o.id = d.organization_id "
            "WHERE r.begin >= %s AND r.begin < %s AND r.records_purged_at IS NULL AND r.record_count > 0 "
            "AND NOT (coalesce(o.record_retention_days, 0) > 0 AND NOT r.quarantined "
            'AND extract(epoch FROM %s - r."end") > o.record_retention_days * 86400.0))',
            [start, end, now],
        )
        return cursor.fetchone()[0]


class _Kept(Exception):
    """A report stored since the first look keeps the month: undo the detach."""


def drop_month(month: datetime.date, now: datetime.datetime) -> tuple[int, int] | None:
    """Detach and drop ``month``'s partition if retention has passed every report in it; return
    (reports marked, records removed), or None when there is no such partition, a report keeps it,
    or its lock was not had."""
    q = connection.ops.quote_name
    name = name_of(month)
    if months().get(month) != name:
        return None
    start, end = span(month)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [LOCK_TIMEOUT])
            cursor.execute(f"ALTER TABLE {q(TABLE)} DETACH PARTITION {q(name)}")
            # Now no record can be written until this commits: look again. A report whose
            # records are still to come is not marked, and they go to DEFAULT after this.
            if _kept(month, now):
                raise _Kept
            # Records of the month that went to DEFAULT (its partition was made late) belong to
            # the same reports, all past retention.
            cursor.execute(f"DELETE FROM {q(DEFAULT)} WHERE day >= %s AND day < %s", [month, next_month(month)])  # noqa: S608
            purged = Report.objects.filter(begin__gte=start, begin__lt=end, records_purged_at=None, record_count__gt=0)
            records = purged.aggregate(records=Sum("record_count", default=0))["records"]
            reports = purged.update(records_purged_at=now)
            cursor.execute(f"DROP TABLE {q(name)}")
    except _Kept:
        return None
    except DatabaseError as exc:
        if _gave_up(exc, f"dropping {name}"):
            return None
        raise
    return reports, records


def _gave_up(exc: DatabaseError, doing: str) -> bool:
    """Whether ``exc`` is one of GAVE_UP (logged: records stay in DEFAULT, or are deleted row by row)."""
    code = getattr(exc.__cause__, "sqlstate", None)
    if code not in GAVE_UP:
        return False
    level = logging.ERROR if code == "42501" else logging.WARNING
    log.log(level, "partitions: %s left for the next run, %s: %s", doing, GAVE_UP[code], exc)
    return True
