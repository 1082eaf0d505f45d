"""Retention: each organization's old report records and raw inputs are removed; the rollups are
made coarser, then removed, on their own clocks.

An organization with ``record_retention_days`` set loses the Record rows of its domains' reports
whose period ended longer ago; the Report rows stay (with their totals and ``records_purged_at``)
and so do the rollups, so the dashboard's counts do not change. With ``raw_retention_days`` set,
its inputs received longer ago lose their raw bytes (``raw_purged_at``); the same bytes reached
by another input that still keeps them stay in the store.

Work goes in small transactions, so a run holds no lock for long and an interrupted run is
simply resumed by the next: whatever is done is marked, whatever is not is found again.

On PostgreSQL a whole month of records whose every report is due goes first, by dropping its
partition (reports/intake/partitions.py, which the run also asks to create the months to come);
the rows left due, of months some report still keeps, are deleted in batches. With
RECORD_RETENTION_SLACK_DAYS set, the due rows of a month that will go whole within that many
days are left for the drop.

Rollups outlive records. Past ``rollup_daily_days`` a whole month's DailySource and DailyDkim rows are
folded into one row per key dated on the month's first day: a sum over whole months is unchanged,
and every reader that sums a date range still works, month-grained for those months. DailyTotal
stays daily (a quarter to a tenth of DailySource's size, and what the time charts draw per day). Past
``rollup_monthly_days`` whole months of all three go. A late report for a folded month adds a
daily row again, which the next run folds.
"""

import datetime
import logging

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from reports.intake import partitions, rawstore
from reports.models import DailyDkim, DailySource, DailyTotal, FailureSample, Intake, Organization, Record, Report

log = logging.getLogger(__name__)

BATCH = 50  # reports, or inputs, per transaction
# Ingest writes the bytes before the ledger row that needs them is committed: a blob written
# this recently may belong to such a row, so it is kept (that input's own retention removes it).
FRESH_BLOB = datetime.timedelta(hours=1)
ROLLUP_BATCH = 2000  # rollup rows per transaction
ROLLUPS = (DailyTotal, DailySource, DailyDkim)
FOLDED = (DailySource, DailyDkim)  # the large ones; DailyTotal is kept daily
# The first day of a rollup row's month, in SQL.
MONTH_OF = {"postgresql": "date_trunc('month', day::timestamp)::date", "sqlite": "date(day, 'start of month')"}


def _cutoff(now: datetime.datetime, days: int) -> datetime.datetime | None:
    try:
        return now - datetime.timedelta(days=days)
    except OverflowError:  # more days than the calendar has: nothing is that old
        return None


def apply(now: datetime.datetime | None = None) -> dict[str, int]:
    """Apply every organization's retention once; return what was removed."""
    now = now or timezone.now()
    counts = dict.fromkeys(("organizations", "reports", "records", "inputs", "blobs", "failures"), 0)
    partitions.maintain(now.astimezone(datetime.UTC).date())
    _, counts["reports"], counts["records"] = partitions.drop_expired(now)
    slack = datetime.timedelta(days=getattr(settings, "RECORD_RETENTION_SLACK_DAYS", 0))
    waiting = [partitions.span(month) for month in partitions.due_within(now, slack)]
    due = Organization.objects.filter(Q(record_retention_days__gt=0) | Q(raw_retention_days__gt=0)).order_by("pk")
    for organization in due:
        counts["organizations"] += 1
        if organization.record_retention_days:
            reports, records = purge_records(organization, now, waiting)
            counts["reports"] += reports
            counts["records"] += records
        if organization.raw_retention_days:
            inputs, blobs = purge_raw(organization, now)
            counts["inputs"] += inputs
            counts["blobs"] += blobs
    for organization in Organization.objects.filter(failure_retention_days__gt=0).order_by("pk"):
        failures, inputs, blobs = purge_failures(organization, now)
        counts["failures"] += failures
        counts["inputs"] += inputs
        counts["blobs"] += blobs
    log.info(
        "retention: %(records)d records of %(reports)d reports, %(failures)d failure samples and the raw bytes "
        "of %(inputs)d inputs (%(blobs)d stored copies) removed for %(organizations)d organizations",
        counts,
    )
    rollups = apply_rollups(now)
    counts["rollups_folded"], counts["rollups_removed"] = rollups["folded"], rollups["removed"]
    return counts


def apply_rollups(now: datetime.datetime) -> dict[str, int]:
    """Fold and remove every organization's old rollups once; return how many rows went
    (``folded``: daily rows folded into monthly ones; ``removed``: rows past the monthly retention)."""
    counts = dict.fromkeys(("organizations", "folded", "removed"), 0)
    due = Organization.objects.filter(Q(rollup_daily_days__gt=0) | Q(rollup_monthly_days__gt=0)).order_by("pk")
    for organization in due:
        counts["organizations"] += 1
        try:
            removed = expire_rollups(organization, now)  # first: no use folding what goes
            folded = fold_rollups(organization, now)
            if removed or folded:  # the dashboard's cached figures of these domains are out of date
                organization.domains.update(rollups_changed_at=now)
            counts["removed"] += removed
            counts["folded"] += folded
        except DatabaseError:
            # A deadlock with a late report of the same old month, say: what was committed stays,
            # the rest is found again by the next run, and the other organizations go on.
            log.exception("rollup retention of organization %s stopped; the next run resumes it", organization.pk)
            organization.domains.update(rollups_changed_at=now)  # some batches may have committed
    log.info(
        "rollup retention: %(folded)d daily rows folded into months, %(removed)d rows removed, "
        "for %(organizations)d organizations",
        counts,
    )
    return counts


def _month_before(now: datetime.datetime, days: int) -> datetime.date | None:
    """The first day of the month holding ``now`` less ``days``: every earlier month is wholly past them.
    None when nothing is: ``days`` is 0 (forever) or more than the calendar has."""
    before = _cutoff(now, days) if days else None
    if before is None:
        return None
    return before.astimezone(datetime.UTC).date().replace(day=1)


def fold_rollups(organization: Organization, now: datetime.datetime) -> int:
    """Fold the organization's DailySource and DailyDkim rows of the months before its
    ``rollup_daily_days`` into one row per key on each month's first day; return the rows folded."""
    before = _month_before(now, organization.rollup_daily_days)
    if before is None:
        return 0
    domains = list(organization.domains.values_list("pk", flat=True))
    folded = 0
    for model in FOLDED:
        # A month's first day holds what was folded: only the other days are due.
        due = model.objects.filter(domain_id__in=domains, day__lt=before).exclude(day__day=1)
        while True:
            with transaction.atomic():
                # Locked until the commit: a late report adding to one of these rows waits, finds it
                # gone and writes a new daily row, which the next run folds. A row it holds already
                # is skipped for the same reason.
                ids = list(due.select_for_update(skip_locked=True).values_list("pk", flat=True)[:ROLLUP_BATCH])
                if not ids:
                    break
                _add_to_months(model, ids)
                folded += _delete(model, ids)
    return folded


def _add_to_months(model, ids: list[int]) -> None:
    """Add the rows ``ids`` (locked) into the rows of their month's first day, made when missing."""
    table = model._meta.db_table
    keys = ", ".join(("domain_id", "day", *model.DIMENSIONS))
    dimensions = ", ".join(model.DIMENSIONS)
    month = MONTH_OF[connection.vendor]
    sums = ", ".join(f"sum({name})" for name in model.SUMS)
    added = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in model.SUMS)
    marks = ", ".join(["%s"] * len(ids))
    sql = (
        f"INSERT INTO {table} ({keys}, {', '.join(model.SUMS)}) "  # noqa: S608 (names are ours)
        f"SELECT domain_id, {month}, {dimensions}, {sums} FROM {table} WHERE id IN ({marks}) "
        f"GROUP BY domain_id, {month}, {dimensions} "
        f"ON CONFLICT ({keys}) DO UPDATE SET {added}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, ids)


def _delete(model, ids: list[int]) -> int:
    marks = ", ".join(["%s"] * len(ids))
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE id IN ({marks})", ids)  # noqa: S608
        return cursor.rowcount


def expire_rollups(organization: Organization, now: datetime.datetime) -> int:
    """Delete the organization's rollups, daily and folded, of the months before its
    ``rollup_monthly_days``; return the rows deleted."""
    before = _month_before(now, organization.rollup_monthly_days)
    if before is None:
        return 0
    domains = list(organization.domains.values_list("pk", flat=True))
    removed = 0
    for model in ROLLUPS:
        due = model.objects.filter(domain_id__in=domains, day__lt=before)
        while True:
            with transaction.atomic():
                ids = list(due.values_list("pk", flat=True)[:ROLLUP_BATCH])
                if not ids:
                    break
                removed += _delete(model, ids)
    return removed


def purge_records(
    organization: Organization, now: datetime.datetime, waiting: list[tuple[datetime.datetime, datetime.datetime]] = ()
) -> tuple[int, int]:
    """Delete the records of the organization's reports that ended before its record retention,
    except those of reports beginning in the ``waiting`` spans (their month is dropped soon);
    return (reports, records)."""
    before = _cutoff(now, organization.record_retention_days)
    if before is None:
        return 0, 0
    # Quarantined reports are not in the rollups yet: their records are all there is until
    # someone reviews them, so they are kept.
    due = Report.objects.filter(
        domain__organization=organization, end__lt=before, records_purged_at=None, quarantined=False
    )
    for start, end in waiting:
        due = due.exclude(begin__gte=start, begin__lt=end)
    return purge_reports(due, now)


def purge_reports(due, now: datetime.datetime) -> tuple[int, int]:
    """Delete the records of the reports in ``due``, BATCH reports per transaction, and mark them;
    return (reports, records)."""
    due = due.order_by("pk")
    reports = records = 0
    while True:
        with transaction.atomic():
            # Skip a report being claimed or stored right now (both lock it): the next run takes it.
            ids = list(due.select_for_update(of=("self",), skip_locked=True).values_list("pk", flat=True)[:BATCH])
            if not ids:
                break
            records += Record.objects.filter(report_id__in=ids).delete()[0]
            reports += Report.objects.filter(pk__in=ids).update(records_purged_at=now)
    return reports, records


def purge_failures(organization: Organization, now: datetime.datetime) -> tuple[int, int, int]:
    """Delete the organization's failure samples older than its failure retention, and the raw bytes of
    the failure reports they came from (personal data, kept briefly); count what went on the
    organization for its Failures tab. Returns (samples, inputs, files)."""
    before = _cutoff(now, organization.failure_retention_days)
    if before is None:
        return 0, 0, 0
    samples = FailureSample.objects.filter(domain__organization=organization, created_at__lt=before).order_by("pk")
    removed = 0
    sources: set[int] = set()  # the inputs they came from, an operator's imports included
    while True:
        with transaction.atomic():
            rows = list(samples.select_for_update(skip_locked=True).values_list("pk", "intake_id")[:BATCH])
            if not rows:
                break
            deleted = FailureSample.objects.filter(pk__in=[pk for pk, _ in rows]).delete()[0]
            Organization.objects.filter(pk=organization.pk).update(
                failures_purged=F("failures_purged") + deleted, failures_purged_at=now
            )
        removed += deleted
        sources |= {intake for _, intake in rows if intake is not None}
    inputs = Intake.objects.filter(
        Q(organization=organization, kind=Intake.Kind.FAILURE, received_at__lt=before) | Q(pk__in=sources),
        raw_purged_at=None,
    ).exclude(status=Intake.Status.RECEIVED)
    marked, blobs = purge_inputs(inputs, now)
    return removed, marked, blobs


def purge_raw(organization: Organization, now: datetime.datetime) -> tuple[int, int]:
    """Remove the raw bytes of the organization's inputs received before its raw retention;
    return (inputs marked, stored copies deleted)."""
    before = _cutoff(now, organization.raw_retention_days)
    if before is None:
        return 0, 0
    # An input never processed has stored nothing yet: its bytes are all there is of it.
    due = Intake.objects.filter(organization=organization, received_at__lt=before, raw_purged_at=None).exclude(
        status=Intake.Status.RECEIVED
    )
    return purge_inputs(due, now)


def purge_inputs(due, now: datetime.datetime) -> tuple[int, int]:
    """Remove the raw bytes of the inputs in ``due``; return (inputs marked, stored copies deleted)."""
    due = due.order_by("pk")
    inputs = blobs = 0
    while True:
        with transaction.atomic():
            rows = list(due.select_for_update(skip_locked=True).values_list("pk", "sha256")[:BATCH])
            if not rows:
                break
            inputs += Intake.objects.filter(pk__in=[pk for pk, _ in rows]).update(raw_purged_at=now)
            digests = {sha256 for _, sha256 in rows}
            # The same bytes can reach several inputs (and organizations): they go with the last.
            needed = set(Intake.objects.filter(sha256__in=digests, raw_purged_at=None).values_list("sha256", flat=True))
            # Deleted before the commit: should it fail, the inputs are found again next run, and
            # a file already gone is no error then. The other order could leave files no run finds.
            blobs += sum(_delete_blob(sha256, now) for sha256 in sorted(digests - needed))
    return inputs, blobs


def _delete_blob(sha256: str, now: datetime.datetime) -> bool:
    written = rawstore.written_at(sha256)
    if written is None:
        return False
    if now - written < FRESH_BLOB:
        return False
    rawstore.delete(sha256)
    return True
