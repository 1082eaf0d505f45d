"""Writing a report's records: COPY on PostgreSQL (lines from reports.intake.copytext), bulk INSERT elsewhere.

Called inside the report's transaction by ``reports.intake.pipeline``; returns the totals the
report row keeps (records, messages, messages passing DMARC).
"""

from collections.abc import Iterable
from itertools import islice

from django.db import connection

from reports.intake.copytext import record_lines
from reports.lib.parsing.aggregate import Record as ParsedRecord
from reports.models import Record, Report

BATCH = 5000
# COPY lines start with the report's columns (copy_prefix), then the record's own.
RECORD_COLUMNS = (
    "report_id",
    "day",
    "source_ip",
    "count",
    "disposition",
    "dkim",
    "spf",
    "header_from",
    "envelope_from",
    "envelope_to",
    "reasons",
    "dkim_results",
    "spf_results",
)


def write_records(report: Report, records: Iterable[ParsedRecord]) -> tuple[int, int, int]:
    """Insert records in bulk; return (records, messages, messages passing DMARC)."""
    if connection.vendor == "postgresql":
        return _copy_records(report, records)
    return _bulk_create_records(report, records)


def copy_prefix(report: Report) -> str:
    """What each COPY line of a report's records starts with: its id, and its day (the
    partition key, which routes the whole report to one month's partition)."""
    return f"{int(report.pk)}\t{report.day.isoformat()}\t"


COPY_LINES = 1000  # lines per write: amortises the call, keeps memory flat
CODE_LENGTH = Record._meta.get_field("disposition").max_length


def copy_sql() -> str:
    return f"COPY {Record._meta.db_table} ({', '.join(RECORD_COLUMNS)}) FROM STDIN"


def _copy_records(report: Report, records: Iterable[ParsedRecord]) -> tuple[int, int, int]:
    """COPY in text format, the lines built here: cheaper than psycopg adapting each value of each row."""
    totals = [0, 0, 0]
    copy_lines(report, record_lines(records, totals))
    return totals[0], totals[1], totals[2]


def copy_lines(report: Report, lines: Iterable[str]) -> None:
    """COPY a report's record lines (reports.intake.copytext) into the records table (PostgreSQL only)."""
    prefix = copy_prefix(report)
    separator = "\n" + prefix
    pending = iter(lines)
    with connection.cursor() as cursor, cursor.cursor.copy(copy_sql()) as copy:
        while batch := list(islice(pending, COPY_LINES)):
            copy.write(prefix + separator.join(batch) + "\n")


def _bulk_create_records(report: Report, records: Iterable[ParsedRecord]) -> tuple[int, int, int]:
    count = messages = passed = 0
    batch = []
    day = report.day
    for record in records:
        count += 1
        messages += record.count
        if record.passed:
            passed += record.count
        batch.append(
            Record(
                report_id=report.pk,
                day=day,
                source_ip=record.source_ip,
                count=record.count,
                disposition=record.disposition[:CODE_LENGTH],
                dkim=record.dkim[:CODE_LENGTH],
                spf=record.spf[:CODE_LENGTH],
                header_from=record.header_from,
                envelope_from=record.envelope_from,
                envelope_to=record.envelope_to,
                reasons=record.reasons,
                dkim_results=record.dkim_results,
                spf_results=record.spf_results,
            )
        )
        if len(batch) >= BATCH:
            Record.objects.bulk_create(batch)
            batch = []
    if batch:
        Record.objects.bulk_create(batch)
    return count, messages, passed
