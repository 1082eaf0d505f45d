"""Daily rollups: the per-day sums the dashboard reads instead of millions of records.

A report adds its records to the rollups of its domain in the transaction that stores
it, so the charts never disagree with the reports, and a duplicate (refused by the
unique fingerprint before any record is written) never counts twice. Rollups are not
subtracted when old records are deleted for retention: they outlive the raw data.

A report counts on the UTC day its date range begins. Quarantined reports (unverified,
and the organization keeps such reports out of charts) and reports of unclaimed domains
are not rolled up; claiming a domain or releasing a report adds them then.
"""

from django.db import connection, transaction

from reports.models import DailyDkim, DailySource, DailyTotal, Domain, Record, Report, WindowState
from reports.tenancy import audit

# The first override reason's type and each DKIM signature, read from the JSON columns
# in the database: Postgres stores them as jsonb, SQLite as text read by its JSON functions.
FIRST_REASON = {
    "postgresql": "coalesce(r.reasons->0->>'type', '')",
    "sqlite": "coalesce(json_extract(r.reasons, '$[0].type'), '')",
}
SIGNATURES = {
    "postgresql": (
        "CROSS JOIN LATERAL jsonb_array_elements("
        "CASE WHEN jsonb_typeof(r.dkim_results) = 'array' THEN r.dkim_results ELSE '[]'::jsonb END) s",
        "s.value->>'{}'",
    ),
    "sqlite": ("CROSS JOIN json_each(r.dkim_results) s", "json_extract(s.value, '$.{}')"),
}


def _upsert(table: str, key: list[str], columns: list[str], select: str, sums: list[str], params: list) -> None:
    """INSERT ... SELECT ... ON CONFLICT (key) DO UPDATE adding ``sums`` to the stored row.

    Every name and SQL fragment comes from this module; report values travel as parameters.
    """
    added = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in sums)
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) {select} "  # noqa: S608 (names are ours)
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {added}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def add_report(report: Report) -> None:
    """Add one stored report's records to its domain's rollups (a no-op when it is not charted)."""
    if report.domain_id is None or report.quarantined:
        return
    vendor = connection.vendor
    record_table = Record._meta.db_table
    # The records are read by report and day: the day confines the read to one month's partition.
    day = report.day
    head = [report.domain_id, day]
    reporter = report.reporter[:200]
    label = report.authenticity

    header_from = "substr(r.header_from, 1, 253)"
    total_table = DailyTotal._meta.db_table
    total_columns = ["domain_id", "day", *DailyTotal.DIMENSIONS, "messages", "records"]
    reason = f"substr({FIRST_REASON[vendor]}, 1, 40)"
    _upsert(
        total_table,
        total_columns[:-2],
        total_columns,
        f"SELECT %s, %s, {header_from}, %s, %s, r.disposition, r.dkim, r.spf, {reason}, sum(r.count), count(*) "  # noqa: S608
        f"FROM {record_table} r WHERE r.report_id = %s AND r.day = %s "
        f"GROUP BY {header_from}, r.disposition, r.dkim, r.spf, {reason}",
        ["messages", "records"],
        [*head, reporter, label, report.pk, day],
    )

    source_table = DailySource._meta.db_table
    source_columns = ["domain_id", "day", *DailySource.DIMENSIONS, "messages", "records"]
    _upsert(
        source_table,
        source_columns[:-2],
        source_columns,
        f"SELECT %s, %s, r.source_ip, {header_from}, %s, r.disposition, r.dkim, r.spf, sum(r.count), count(*) "  # noqa: S608
        f"FROM {record_table} r WHERE r.report_id = %s AND r.day = %s "
        f"GROUP BY r.source_ip, {header_from}, r.disposition, r.dkim, r.spf",
        ["messages", "records"],
        [*head, label, report.pk, day],
    )

    join, field = SIGNATURES[vendor]
    signing_domain = f"substr(lower(coalesce({field.format('domain')}, '')), 1, 253)"
    selector = f"substr(coalesce({field.format('selector')}, ''), 1, 253)"
    result = f"substr(coalesce({field.format('result')}, ''), 1, 20)"
    dkim_columns = ["domain_id", "day", "signing_domain", "selector", "result", "messages"]
    _upsert(
        DailyDkim._meta.db_table,
        dkim_columns[:-1],
        dkim_columns,
        f"SELECT %s, %s, {signing_domain}, {selector}, {result}, sum(r.count) "  # noqa: S608
        f"FROM {record_table} r {join} WHERE r.report_id = %s AND r.day = %s "
        f"GROUP BY {signing_domain}, {selector}, {result}",
        ["messages"],
        [*head, report.pk, day],
    )


def rebuild(domain: Domain, actor=None, action: str = "domain.rollups-rebuilt") -> int:
    """Recompute a domain's rollups from the reports still stored; return how many were added.

    Only for repairs (a changed rule, a bug fixed): after retention has deleted old
    records, a rebuild would lose the days they covered.
    """
    domain_id = domain.pk
    with transaction.atomic():
        for model in (DailyTotal, DailySource, DailyDkim, WindowState):
            model.objects.filter(domain_id=domain_id).delete()  # windows: not current until refreshed
        reports = Report.objects.filter(domain_id=domain_id, quarantined=False).only(
            "pk", "domain_id", "begin", "org_name", "email", "authenticity", "quarantined"
        )
        count = 0
        for report in reports.iterator():
            add_report(report)
            count += 1
        if actor is not None:
            audit.record(actor, domain.organization, action, domain.name, after={"reports": count})
    return count
