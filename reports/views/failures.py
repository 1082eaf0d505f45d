"""A domain's failure samples (RFC 9991 / ARF failure reports): the Failures tab, one sample's page, its
raw input, the CSV export and the JSON API.

Scoped like the other tabs (a domain of another organization is a 404), and then once more: the
samples hold personal data, so only those ``FailureSample.objects.for_viewer`` allows (the
organization's owners and admins, and its viewers where the organization opened samples to them)
see them; everyone else who sees the domain gets the counts and the chart. A sample they may not
open is a 404, as for a stranger. Every look at samples themselves (a sample's page, its raw input,
the CSV, the API) is written to the audit log. Everything in a sample is the sender's or the
reporter's text: the templates escape it and the CSV defuses formulas.
"""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import path
from django.utils.http import urlencode

from reports.dashboard import charts, failures, stats
from reports.dashboard.failures import SampleFilters
from reports.intake import rawstore
from reports.models import ApiToken, DailySource, FailureSample
from reports.tenancy import audit
from reports.views.api import api_view
from reports.views.dashboard import period_and_filters, visible_domain
from reports.views.exports import csv_response

NO_RAW = "The raw failure report is no longer kept: retention removed it, or it was never stored."


def _seen_ips(domain, ips) -> set[str]:
    """The IPs among ``ips`` the domain's aggregate reports know (their source page exists)."""
    return set(DailySource.objects.filter(domain=domain, source_ip__in=list(ips)).values_list("source_ip", flat=True))


@login_required
def domain_failures(request, name: str):
    domain = visible_domain(request, name)
    period, dmarc_filters, error = period_and_filters(request)
    allowed = failures.may_open(domain, request.user)
    # The filters are for those who see the samples; the counts of everyone else are the whole period's.
    sample_filters = SampleFilters.from_query(request.GET) if allowed else SampleFilters()
    days = failures.daily(domain, period, sample_filters)
    totals = failures.totals(days)
    sources = failures.top_sources(domain, period, sample_filters)
    seen = _seen_ips(domain, [row["source_ip"] for row in sources])
    for row in sources:
        row["seen"] = row["source_ip"] in seen
    context = {
        "domain": domain,
        "tab": "failures",
        "period": period,
        "period_error": error,
        "presets": stats.PRESETS,
        # The DMARC tabs' filters ride along, so going back to them keeps what was chosen.
        "query": urlencode(period.query() | dmarc_filters.query()),
        "period_query": urlencode(period.query()),
        "export_query": urlencode(period.query() | sample_filters.query()),
        "allowed": allowed,
        "sample_filters": sample_filters,
        "totals": totals,
        "sources": sources,
        "selectors": failures.top_selectors(domain, period, sample_filters),
        "reporters": failures.top_reporters(domain, period, sample_filters),
        "retention": failures.retention(domain),
        "can_manage": domain.managed_by(request.user),
    }
    if totals["samples"]:
        context["charts"] = {"failure-samples": charts.failure_samples_per_day(days)}
    else:
        context["known"] = failures.first_and_last(domain)
    if allowed:
        context["choices"] = failures.choices(domain, period)
        context["page"] = Paginator(
            failures.samples(domain, period, sample_filters, request.user), stats.PAGE_SIZE
        ).get_page(request.GET.get("page"))
    return render(request, "reports/domain_failures.html", context)


def _sample(request, name: str, sample_id: int) -> FailureSample:
    """The sample, when the user sees its domain and may open its samples; else 404."""
    domain = visible_domain(request, name)
    allowed = FailureSample.objects.for_viewer(request.user).filter(domain=domain).select_related("intake", "domain")
    return get_object_or_404(allowed, pk=sample_id)


def _target(sample: FailureSample) -> str:
    return f"{sample.domain.name}: failure sample {sample.pk}"


def _facts(sample: FailureSample) -> dict:
    return {"sample": sample.pk, "reporter": sample.reporter[:200], "day": sample.day.isoformat()}


@login_required
def failure_sample(request, name: str, sample_id: int):
    sample = _sample(request, name, sample_id)
    domain = sample.domain
    audit.record(request, domain.organization, "failure.viewed", _target(sample), after=_facts(sample))
    seen = bool(sample.source_ip) and bool(_seen_ips(domain, [sample.source_ip]))
    raw_kept = sample.intake is not None and sample.intake.raw_purged_at is None
    context = {
        "domain": domain,
        "sample": sample,
        "checks": [failures.CHECK_NAMES[check] for check in failures.checks_of(sample.auth_failures)],
        "source_seen": seen,
        "raw_kept": raw_kept,
        "retention": failures.retention(domain),
        "repairs": sorted((str(key), value) for key, value in (sample.repairs or {}).items())
        if isinstance(sample.repairs, dict)
        else [],
    }
    return render(request, "reports/failure_sample.html", context)


@login_required
def failure_raw(request, name: str, sample_id: int):
    """The failure report as it arrived, as a download (never shown inline: it is the attacker's text)."""
    sample = _sample(request, name, sample_id)
    intake = sample.intake
    if intake is None or intake.raw_purged_at is not None:
        return HttpResponse(NO_RAW, status=410, content_type="text/plain; charset=utf-8")
    try:
        stream = rawstore.open_raw(intake.sha256)
    except (FileNotFoundError, ValueError):
        return HttpResponse(NO_RAW, status=410, content_type="text/plain; charset=utf-8")
    audit.record(request, sample.domain.organization, "failure.raw-viewed", _target(sample), after=_facts(sample))
    filename = f"{sample.domain.name}-failure-{sample.pk}.txt"
    response = FileResponse(stream, as_attachment=True, filename=filename, content_type="text/plain")
    response["X-Content-Type-Options"] = "nosniff"
    return response


CSV_COLUMNS = ("id", "day", "arrival_date", "reporter", "format", "feedback_type", "auth_failures")
CSV_COLUMNS += ("identity_alignment", "source_ip", "reported_domain", "original_mail_from", "original_rcpt_to")
CSV_COLUMNS += ("reporting_mta", "delivery_result", "dkim_domain", "dkim_selector", "dkim_identity", "spf_dns")
CSV_COLUMNS += ("header_from", "subject", "message_id", "hashed", "defanged", "body_dropped")
CSV_COLUMNS += ("attachments_dropped", "gaps")


def _joined(value) -> str:
    return "; ".join(map(str, value)) if isinstance(value, list) else str(value or "")


def _moment(value) -> str:
    return value.astimezone(failures.UTC).isoformat() if value else ""


def _row(sample: FailureSample) -> dict:
    """One sample as the CSV and the API give it (not its headers: the page and the raw input have them)."""
    return {
        "id": sample.pk,
        "day": sample.day.isoformat(),
        "arrival_date": _moment(sample.arrival_date),
        "reporter": sample.reporter,
        "format": sample.format,
        "feedback_type": sample.feedback_type,
        "auth_failures": [str(value) for value in sample.auth_failures or ()],
        "identity_alignment": sample.identity_alignment,
        "source_ip": sample.source_ip or "",
        "reported_domain": sample.reported_domain,
        "original_mail_from": sample.original_mail_from,
        "original_rcpt_to": [str(value) for value in sample.original_rcpt_to or ()],
        "reporting_mta": sample.reporting_mta,
        "delivery_result": sample.delivery_result,
        "dkim_domain": sample.dkim_domain,
        "dkim_selector": sample.dkim_selector,
        "dkim_identity": sample.dkim_identity,
        "spf_dns": sample.spf_dns,
        "header_from": sample.header_from,
        "subject": sample.subject,
        "message_id": sample.message_id,
        "hashed": sample.hashed,
        "defanged": sample.defanged,
        "body_dropped": sample.body_dropped,
        "attachments_dropped": sample.attachments_dropped,
        "gaps": [str(value) for value in sample.gaps or ()],
    }


@login_required
def failures_csv(request, name: str):
    """The period's samples the user may open, a row each, oldest first: 404 for one who may not."""
    domain = visible_domain(request, name)
    if not failures.may_open(domain, request.user):
        raise Http404("no failure samples to export")
    period, _, _ = period_and_filters(request)
    sample_filters = SampleFilters.from_query(request.GET)
    rows = failures.for_export(domain, period, sample_filters, request.user)
    audit.record(
        request,
        domain.organization,
        "failure.exported",
        f"{domain.name}: failure samples {period.start} to {period.end} (CSV)",
        after={"from": period.start.isoformat(), "to": period.end.isoformat(), **sample_filters.query()},
    )
    lines = (
        tuple(_joined(value) if isinstance(value, list) else value for value in _row(sample).values())
        for sample in rows.iterator(chunk_size=2000)
    )
    return csv_response(f"{domain.name}-failures-{period.start}-{period.end}.csv", CSV_COLUMNS, lines)


def _api_token(request) -> ApiToken | None:
    """The API token the request came with (``api_view`` has already refused an unknown one)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    return ApiToken.authenticate(token) if token else None


@api_view
def failures_api(request, scope):
    """The period's counts and a page of its samples. An organization's token reads its own
    organization's; a session, what its user may open (404 for one who may not)."""
    domain, period = scope["domain"], scope["period"]
    token = _api_token(request)
    if token is None and not failures.may_open(domain, request.user):
        return JsonResponse({"error": "no such domain"}, status=404)
    sample_filters = SampleFilters.from_query(request.GET)
    days = failures.daily(domain, period, sample_filters)
    if token is not None:
        rows = failures.filtered(failures.in_period(domain, period), sample_filters).order_by(
            "-day", "-arrival_date", "-id"
        )
    else:
        rows = failures.samples(domain, period, sample_filters, request.user)
    page = Paginator(rows, stats.PAGE_SIZE).get_page(request.GET.get("page"))
    audit.record(
        request,
        domain.organization,
        "failure.exported",
        f"{domain.name}: failure samples {period.start} to {period.end} (API)",
        after={
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "page": page.number,
            **sample_filters.query(),
            **({"token": token.name} if token is not None else {}),
        },
    )
    return JsonResponse(
        {
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "filters": sample_filters.query(),
            "retention_days": domain.organization.failure_retention_days,
            "totals": {key: value for key, value in failures.totals(days).items() if key != "kinds"},
            "days": [
                {"date": row["date"], **{key: row[key] for key in ("samples", *failures.KIND_NAMES)}} for row in days
            ],
            "page": page.number,
            "pages": page.paginator.num_pages,
            "count": page.paginator.count,
            "samples": [_row(sample) for sample in page.object_list],
        }
    )


urlpatterns = [
    path("domains/<str:name>/failures/", domain_failures, name="domain-failures"),
    path("domains/<str:name>/failures/export.csv", failures_csv, name="export-failures"),
    path("domains/<str:name>/failures/<int:sample_id>/", failure_sample, name="failure-sample"),
    path("domains/<str:name>/failures/<int:sample_id>/raw/", failure_raw, name="failure-raw"),
    path("api/v1/domains/<str:name>/failures", failures_api, name="api-failures"),
]
