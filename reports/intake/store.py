"""Writing a report's records: COPY on PostgreSQL (the lines built here), bulk INSERT elsewhere.

Called inside the report's transaction by ``reports.intake.pipeline``; returns the totals the
report row keeps (records, messages, messages passing DMARC).
"""

import json
from collections.abc import Iterable

from django.db import connection

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


# COPY text format: a field with one of these characters is escaped (report text can hold any).
COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
COPY_LINES = 1000  # lines per write: amortises the call, keeps memory flat
# The parser keeps an unknown disposition or aligned result as sent, up to the field cap;
# the columns are short, so it is cut to fit rather than failing the whole report.
CODE_LENGTH = Record._meta.get_field("disposition").max_length
JSON_CACHE = 4096  # distinct auth-result lists remembered per report
JSON_CACHE_TEXT = 512  # longer JSON is not remembered: report values are attacker-sized
JSON_KEYS = {
    name: f'"{name}":' for name in ("type", "comment", "domain", "selector", "scope", "result", "human_result")
}
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_encode_string = json.encoder.encode_basestring  # a JSON string literal, non-ASCII kept, as _encode_json does


def _json(value: list, cache: dict) -> str:
    """JSON text of a list of flat dicts of strings, remembered in ``cache``.

    A report repeats the same few auth results across thousands of records, and
    json.dumps of the three small lists of a record costs a third of parsing it.
    """
    if not value:
        return "[]"
    try:
        key = tuple([tuple(item.items()) for item in value])
        text = cache.get(key)
        if text is None:
            # _json_object raises TypeError on a value that is not a string, so only lists of
            # strings are cached, and a str never compares equal to another type in a key.
            text = "[" + ",".join(map(_json_object, value)) + "]"
            if len(text) <= JSON_CACHE_TEXT:
                if len(cache) >= JSON_CACHE:
                    cache.clear()
                cache[key] = text
        return text
    except (AttributeError, TypeError):  # not flat dicts of strings: encode them as they are
        return _encode_json(value)


def _json_object(item: dict) -> str:
    return (
        "{"
        + ",".join([(JSON_KEYS.get(k) or _encode_string(k) + ":") + _encode_string(v) for k, v in item.items()])
        + "}"
    )


def _copy_records(report: Report, records: Iterable[ParsedRecord]) -> tuple[int, int, int]:
    """COPY in text format, the lines built here: cheaper than psycopg adapting each value of each row."""
    count = messages = passed = 0
    sql = f"COPY {Record._meta.db_table} ({', '.join(RECORD_COLUMNS)}) FROM STDIN"
    prefix = copy_prefix(report)
    cache: dict = {}
    lines: list[str] = []
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for record in records:
            count += 1
            messages += record.count
            if record.passed:
                passed += record.count
            fields = (
                record.source_ip,
                str(record.count),
                record.disposition[:CODE_LENGTH],
                record.dkim[:CODE_LENGTH],
                record.spf[:CODE_LENGTH],
                record.header_from,
                record.envelope_from,
                record.envelope_to,
                _json(record.reasons, cache),
                _json(record.dkim_results, cache),
                _json(record.spf_results, cache),
            )
            line = "\t".join(fields)
            # One scan of the joined line finds the rare field that needs escaping (JSON text
            # has no raw tab, newline or CR; a backslash in it is escaped like any other).
            if line.count("\t") != len(fields) - 1 or "\\" in line or "\n" in line or "\r" in line:
                line = "\t".join([field.translate(COPY_ESCAPES) for field in fields])
            lines.append(line)
            if len(lines) == COPY_LINES:
                copy.write(prefix + ("\n" + prefix).join(lines) + "\n")
                lines.clear()
        if lines:
            copy.write(prefix + ("\n" + prefix).join(lines) + "\n")
    return count, messages, passed


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
