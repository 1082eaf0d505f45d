"""CSV downloads of the dashboard's tables, for the same period and filters as the page."""

import csv
import io
from collections.abc import Iterable, Iterator

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import StreamingHttpResponse
from django.urls import path

from reports.dashboard import stats
from reports.lib.csvsafe import FORMULA_STARTS, csv_lines
from reports.models import Record, Sender, SourceIP
from reports.views.dashboard import period_and_filters, visible_domain
from reports.views.reports import visible_report

RATES = ("dkim_aligned_rate", "spf_aligned_rate", "passing_rate")
COUNTS = ("messages", "dkim_aligned", "spf_aligned", "passing", "failing", "quarantined", "rejected")


def csv_response(filename: str, header: Iterable[str], rows: Iterable[Iterable]) -> StreamingHttpResponse:
    """Stream the rows: an export of a year of sources never sits in memory whole."""
    response = StreamingHttpResponse(csv_lines(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _percent(value: float | None) -> float | str:
    return "" if value is None else round(100 * value, 2)


def _filename(domain, period, table: str) -> str:
    return f"{domain.name}-{table}-{period.start}-{period.end}.csv"


SOURCE_HEADER = ("source_ip", "ptr", "forward_confirmed", "sender", "asn", "as_name", "country", *COUNTS)
SOURCE_HEADER += ("dkim_aligned_pct", "spf_aligned_pct", "dmarc_pass_pct", "first_seen", "last_seen")
CHUNK_ROWS = 2000


def _text(value: str | None) -> str:
    """A text cell as csvsafe.safe_cell writes it: formulas defused."""
    if not value:
        return ""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def source_export_chunks(domain, period, filters, sort: str) -> Iterator[str]:
    """The sources CSV, every source of the period with what is known about its IP in the page's
    order, as text chunks of CHUNK_ROWS lines: one query over the source windows (or the daily
    rollup) joined to the IPs and senders, read from a server-side cursor, so a year of a large
    domain streams in constant memory. The cells are those of csvsafe.csv_lines (text defused,
    numbers as numbers), written a chunk at a time: per cell and per line, Python is the cost."""
    inner, params = stats.source_rows(domain, period, filters, sort).order_by().query.sql_with_params()
    quote = connection.ops.quote_name
    order = ", ".join(
        f"g.{quote(name.lstrip('-'))} {'DESC' if name.startswith('-') else 'ASC'}"
        for name in stats.source_ordering(sort)
    )
    names = ", ".join(f"g.{quote(name)}" for name in (*COUNTS, *RATES, "first_day", "last_day"))
    sql = (
        f"SELECT g.source_ip, s.ptr, s.forward_confirmed, n.name, s.asn, s.as_name, s.country, {names} "  # noqa: S608 (our SQL; values are params)
        f"FROM ({inner}) g LEFT JOIN {SourceIP._meta.db_table} s ON s.ip = g.source_ip "
        f"LEFT JOIN {Sender._meta.db_table} n ON n.id = s.sender_id ORDER BY {order}"
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(SOURCE_HEADER)
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(CHUNK_ROWS):
            writer.writerows(
                (
                    _text(ip),
                    _text(ptr),
                    "" if confirmed is None else confirmed,
                    _text(sender),
                    asn or "",
                    _text(as_name),
                    _text(country),
                    messages,
                    dkim_aligned,
                    spf_aligned,
                    passing,
                    failing,
                    quarantined,
                    rejected,
                    "" if dkim_rate is None else round(100 * dkim_rate, 2),
                    "" if spf_rate is None else round(100 * spf_rate, 2),
                    "" if pass_rate is None else round(100 * pass_rate, 2),
                    first_day,
                    last_day,
                )
                for (
                    ip, ptr, confirmed, sender, asn, as_name, country,
                    messages, dkim_aligned, spf_aligned, passing, failing, quarantined, rejected,
                    dkim_rate, spf_rate, pass_rate, first_day, last_day,
                ) in chunk
            )  # fmt: skip
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


@login_required
def sources_csv(request, name: str):
    domain = visible_domain(request, name)
    period, filters, _ = period_and_filters(request)
    chunks = source_export_chunks(domain, period, filters, request.GET.get("sort", "-messages"))
    response = StreamingHttpResponse(chunks, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{_filename(domain, period, "sources")}"'
    return response


@login_required
def senders_csv(request, name: str):
    domain = visible_domain(request, name)
    period, filters, _ = period_and_filters(request)
    rows = stats.senders(domain, period, filters)
    lines = (
        (
            row["sender"].name if row["sender"] else "",
            row["ips"],
            *(row[n] for n in COUNTS),
            *map(_percent, [row[n] for n in RATES]),
        )
        for row in rows
    )
    header = ("sender", "source_ips", *COUNTS, "dkim_aligned_pct", "spf_aligned_pct", "dmarc_pass_pct")
    return csv_response(_filename(domain, period, "senders"), header, lines)


@login_required
def reporters_csv(request, name: str):
    domain = visible_domain(request, name)
    period, filters, _ = period_and_filters(request)
    rows = stats.breakdown(domain, period, filters, "reporter")
    lines = ((row["key"], *(row[n] for n in COUNTS), *map(_percent, [row[n] for n in RATES])) for row in rows)
    header = ("reporter", *COUNTS, "dkim_aligned_pct", "spf_aligned_pct", "dmarc_pass_pct")
    return csv_response(_filename(domain, period, "reporters"), header, lines)


@login_required
def dkim_csv(request, name: str):
    domain = visible_domain(request, name)
    period, _, _ = period_and_filters(request)
    rows = stats.dkim_signatures(domain, period)
    lines = (
        (
            r["signing_domain"],
            r["selector"],
            r["aligned"],
            r["messages"],
            r["passing"],
            _percent(r["passing_rate"]),
            r["fails_since"] or "",
        )
        for r in rows
    )
    header = ("signing_domain", "selector", "aligned", "messages", "passing", "pass_pct", "failing_since")
    return csv_response(_filename(domain, period, "dkim"), header, lines)


@login_required
def report_records_csv(request, report_id: int):
    report = visible_report(request, report_id)
    fields = ("source_ip", "count", "disposition", "dkim", "spf", "header_from", "envelope_from", "envelope_to")
    records = Record.objects.of_report(report).order_by("id")
    records = records.values_list(*fields, "reasons", "dkim_results", "spf_results")

    def lines():
        for *values, reasons, dkim_results, spf_results in records.iterator(chunk_size=2000):
            yield (
                *values,
                "; ".join(f"{r.get('type', '')} {r.get('comment', '')}".strip() for r in reasons),
                "; ".join(
                    f"{r.get('domain', '')} s={r.get('selector', '')} {r.get('result', '')}" for r in dkim_results
                ),
                "; ".join(f"{r.get('domain', '')} {r.get('scope', '')} {r.get('result', '')}" for r in spf_results),
            )

    return csv_response(f"report-{report.pk}-records.csv", (*fields, "reasons", "dkim", "spf"), lines())


urlpatterns = [
    path("domains/<str:name>/sources.csv", sources_csv, name="export-sources"),
    path("domains/<str:name>/senders.csv", senders_csv, name="export-senders"),
    path("domains/<str:name>/reporters.csv", reporters_csv, name="export-reporters"),
    path("domains/<str:name>/dkim.csv", dkim_csv, name="export-dkim"),
    path("reports/<int:report_id>/records.csv", report_records_csv, name="export-report-records"),
]
