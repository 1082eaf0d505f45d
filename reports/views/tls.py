"""A domain's SMTP TLS reports (RFC 8460): the TLS tab, one report's page, its CSV export and JSON API.

Scoped like the DMARC pages: a domain of another organization is a 404 (``visible_domain``), and the
API answers a token only about its own organization's domains (``api_view``). Counts are TLS sessions.
"""

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import path
from django.utils.http import urlencode

from reports.dashboard import charts, stats, tls
from reports.models import TlsReport
from reports.tenancy import onboarding
from reports.views.api import api_view
from reports.views.dashboard import period_and_filters, visible_domain
from reports.views.exports import csv_response


def tlsrpt_record(address: str) -> str:
    """The TXT record of ``_smtp._tls.<domain>`` that sends TLS reports to ``address``."""
    return f"v=TLSRPTv1; rua=mailto:{address}"


@login_required
def domain_tls(request, name: str):
    domain = visible_domain(request, name)
    period, filters, error = period_and_filters(request)
    numbers = tls.tab(domain, period)
    context = {
        "domain": domain,
        "tab": "tls",
        "period": period,
        "period_error": error,
        "presets": stats.PRESETS,
        # The DMARC tabs' filters ride along, so going back to them keeps what was chosen.
        "query": urlencode(period.query() | filters.query()),
        "period_query": urlencode(period.query()),
        **numbers,
    }
    if numbers["totals"]["reports"]:
        context["charts"] = {"tls-sessions": charts.tls_sessions_per_day(numbers["days"])}
        if numbers["result_types"]:
            context["charts"]["tls-result-types"] = charts.tls_result_types(numbers["result_types"])
    else:
        context["known"] = tls.first_and_last(domain)
        address = onboarding.report_address(domain.organization)
        context["address"] = address
        context["record"] = tlsrpt_record(address) if address else ""
    return render(request, "reports/domain_tls.html", context)


@login_required
def tls_report(request, name: str, tls_report_id: int):
    domain = visible_domain(request, name)
    report = get_object_or_404(TlsReport.objects.filter(domain=domain).select_related("intake"), pk=tls_report_id)
    context = {"domain": domain, "report": report, "policies": tls.report_detail(report)}
    return render(request, "reports/tls_report.html", context)


def _percent(value: float | None) -> float | str:
    return "" if value is None else round(100 * value, 2)


def _moment(value) -> str:
    return value.astimezone(tls.UTC).isoformat() if value else ""


POLICY_COLUMNS = ("begin", "end", "reporter", "contact", "report_id", "policy_domain", "policy_type")
POLICY_COLUMNS += ("policy_strings", "mx_hosts", "successful", "failed", "failure_pct")
FAILURE_COLUMNS = ("begin", "end", "reporter", "report_id", "policy_type", "result_type", "sending_mta_ip")
FAILURE_COLUMNS += ("receiving_mx_hostname", "receiving_mx_helo", "receiving_ip", "failed_sessions")
FAILURE_COLUMNS += ("additional_information", "failure_reason_code")


@login_required
def tls_csv(request, name: str):
    """The period's TLS reports as CSV: a row per policy of each report (its sessions), or with
    ``?table=failures`` a row per failure detail."""
    domain = visible_domain(request, name)
    period, _, _ = period_and_filters(request)
    if request.GET.get("table") == "failures":
        rows = tls.failures_for_export(domain, period)
        lines = (
            (
                _moment(row["report__begin"]),
                _moment(row["report__end"]),
                row["report__organization"],
                row["report__report_id"],
                row["policy__policy_type"],
                *(row[column] for column in FAILURE_COLUMNS[5:]),
            )
            for row in rows.iterator(chunk_size=2000)
        )
        return csv_response(f"{domain.name}-tls-failures-{period.start}-{period.end}.csv", FAILURE_COLUMNS, lines)
    rows = tls.policies_for_export(domain, period)
    lines = (
        (
            _moment(row["report__begin"]),
            _moment(row["report__end"]),
            row["report__organization"],
            row["report__contact"],
            row["report__report_id"],
            row["report__policy_domain"],
            row["policy_type"],
            "; ".join(map(str, row["policy_strings"] or [])),
            "; ".join(map(str, row["mx_hosts"] or [])),
            row["successful"],
            row["failed"],
            _percent(tls.with_rate(dict(row))["failure_rate"]),
        )
        for row in rows.iterator(chunk_size=2000)
    )
    return csv_response(f"{domain.name}-tls-{period.start}-{period.end}.csv", POLICY_COLUMNS, lines)


def _sessions(row: dict) -> dict:
    return {name: row[name] for name in ("successful", "failed", "sessions", "failure_rate")}


@api_view
def tls_api(request, scope):
    """The TLS tab's numbers for one domain and period."""
    period = scope["period"]
    numbers = tls.tab(scope["domain"], period)
    return JsonResponse(
        {
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "totals": {
                "reports": numbers["totals"]["reports"],
                "reporters": numbers["totals"]["reporters"],
                **_sessions(numbers["totals"]),
            },
            "days": [{"date": row["date"], **_sessions(row)} for row in numbers["days"]],
            "result_types": [
                {
                    "result_type": row["result_type"],
                    "failed_sessions": row["failed_sessions"],
                    "reports": row["reports"],
                    "mx_hosts": row["mx_hosts"],
                }
                for row in numbers["result_types"]
            ],
            "mx_hosts": [
                {
                    "mx_host": row["hostname"],
                    "failed_sessions": row["failed_sessions"],
                    "result_types": dict(row["result_types"]),
                    "sessions": row["sessions"],
                    "failed": row["failed"],
                    "failure_rate": row["failure_rate"],
                }
                for row in numbers["mx_hosts"]
            ],
            "reporters": [
                {"reporter": row["organization"], "reports": row["reports"], "last_seen": row["last_seen"]}
                | _sessions(row)
                for row in numbers["reporters"]
            ],
            "policies": [
                {
                    "reporter": row["organization"],
                    "policy_type": row["policy_type"],
                    "policy_strings": row["policy_strings"],
                    "mx_hosts": row["mx_hosts"],
                    "reports": row["reports"],
                    "first_seen": row["first_seen"],
                    "last_seen": row["last_seen"],
                }
                | _sessions(row)
                for row in numbers["policies"]
            ],
            "reports": [
                {
                    "id": report.pk,
                    "reporter": report.organization,
                    "report_id": report.report_id,
                    "begin": report.begin,
                    "end": report.end,
                    "successful": report.successful,
                    "failed": report.failed,
                    "sessions": report.sessions,
                    "failure_rate": report.failure_rate,
                }
                for report in numbers["reports"]
            ],
        }
    )


urlpatterns = [
    path("domains/<str:name>/tls/", domain_tls, name="domain-tls"),
    path("domains/<str:name>/tls/export.csv", tls_csv, name="export-tls"),
    path("domains/<str:name>/tls-reports/<int:tls_report_id>/", tls_report, name="tls-report"),
    path("api/v1/domains/<str:name>/tls", tls_api, name="api-tls"),
]
