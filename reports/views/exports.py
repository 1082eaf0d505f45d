"""CSV downloads of the dashboard's tables, for the same period and filters as the page."""

from collections.abc import Iterable
from itertools import islice

from django.contrib.auth.decorators import login_required
from django.http import StreamingHttpResponse
from django.urls import path

from reports.dashboard import stats
from reports.lib.csvsafe import csv_lines
from reports.models import Record, SourceIP
from reports.views.dashboard import period_and_filters, visible_domain
from reports.views.reports import visible_report

RATES = ("dkim_aligned_rate", "spf_aligned_rate", "passing_rate")
COUNTS = ("messages", "dkim_aligned", "spf_aligned", "passing", "failing", "quarantined", "rejected")


def csv_response(filename: str, header: Iterable[str], rows: Iterable[Iterable]) -> StreamingHttpResponse:
    """Stream the rows: an export of a year of sources never sits in memory whole."""
    response = StreamingHttpResponse(csv_lines(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _batches(rows, size: int = 2000):
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def _percent(value: float | None) -> float | str:
    return "" if value is None else round(100 * value, 2)


def _filename(domain, period, table: str) -> str:
    return f"{domain.name}-{table}-{period.start}-{period.end}.csv"


@login_required
def sources_csv(request, name: str):
    domain = visible_domain(request, name)
    period, filters, _ = period_and_filters(request)
    rows = stats.source_rows(domain, period, filters, request.GET.get("sort", "-messages"))

    def lines():
        for chunk in _batches(rows.iterator(chunk_size=2000)):
            # Plain tuples, not model instances: an export of a year can be 300,000 rows.
            known = {
                ip: rest
                for ip, *rest in SourceIP.objects.filter(ip__in=[row["source_ip"] for row in chunk]).values_list(
                    "ip", "ptr", "forward_confirmed", "sender__name", "asn", "as_name", "country"
                )
            }
            for row in chunk:
                ptr, confirmed, sender, asn, as_name, country = known.get(row["source_ip"], ("",) * 6)
                yield (
                    row["source_ip"],
                    ptr,
                    "" if confirmed is None else confirmed,
                    sender or "",
                    asn or "",
                    as_name,
                    country,
                    *(row[name] for name in COUNTS),
                    *(_percent(row[name]) for name in RATES),
                    row["first_day"],
                    row["last_day"],
                )

    header = ("source_ip", "ptr", "forward_confirmed", "sender", "asn", "as_name", "country", *COUNTS)
    header += ("dkim_aligned_pct", "spf_aligned_pct", "dmarc_pass_pct", "first_seen", "last_seen")
    return csv_response(_filename(domain, period, "sources"), header, lines())


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
